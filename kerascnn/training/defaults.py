"""The defaults of `fit`, `kerascnn train` and `kerascnn quickstart`, in one place.

Chosen by measurement (docs/training.md, "Defaults": seeds' mean and spread
of each candidate on mnist5k and digits); the workflows and the CLI import
them from here. The model's own defaults (the flatten head for small feature
maps, dropout 0.5) live in `kerascnn.models.build_cnn`.
"""

EPOCHS = 15
"""Maximum epochs. With the decaying schedule below the best epoch is the
last or nearly so; early stopping still ends a run whose validation loss has
stopped improving."""

BATCH_SIZE = 64
OPTIMIZER = "adam"
LEARNING_RATE = 2e-3
"""The starting (peak) rate of `SCHEDULE`."""

SCHEDULE = "exponential"
"""Decayed once per epoch to 1/100 of `LEARNING_RATE` by the last epoch."""

AUGMENT = None
"""`fit` augments only when asked: the right augmentation depends on the
images (no flips for digits or text, flips for most photographs)."""

DIGITS_AUGMENT = None
"""The augmentation the quickstart uses on mnist5k: none. Measured with the
"digits" preset (rotations, shifts, zooms) at this 15-epoch budget, the
quickstart reached only 0.960 test accuracy (seeds 0, 1, 2: 0.962, 0.962,
0.956; best epochs 12-13 of 15, still improving): augmentation needs more
epochs than the budget to pay off (docs/training.md, "Defaults")."""

EARLY_STOPPING_PATIENCE = 5
VALIDATION_SPLIT = 0.1
TEST_SPLIT = 0.1
SEED = 42
