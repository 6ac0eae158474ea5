"""The defaults of `fit`, `kerascnn train` and `kerascnn quickstart`, in one place.

Chosen by measurement (see docs/training.md); the workflows and the CLI
import them from here.
"""

EPOCHS = 30
BATCH_SIZE = 64
OPTIMIZER = "adam"
LEARNING_RATE = 1e-3
SCHEDULE = None
AUGMENT = None
EARLY_STOPPING_PATIENCE = 5
VALIDATION_SPLIT = 0.1
TEST_SPLIT = 0.1
SEED = 42
