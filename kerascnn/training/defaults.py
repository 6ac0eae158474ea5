"""The defaults of `fit`, `kerascnn train` and `kerascnn quickstart`, in one place.

Chosen by measurement (docs/training.md, "Defaults": seeds' mean and spread
of each candidate on mnist5k and digits); the workflows and the CLI import
them from here. The model's own defaults (the flatten head for small feature
maps, dropout 0.5) live in `kerascnn.models.build_cnn`.
"""

EPOCHS = 20
"""Epochs of the run. The one-cycle schedule below anneals to 0 at the last
epoch, so the run ends on its best weights; early stopping still ends one
whose validation loss has stopped improving."""

BATCH_SIZE = 64
OPTIMIZER = "adam"
LEARNING_RATE = 3e-3
"""The peak rate of `SCHEDULE`."""

SCHEDULE = "one_cycle"
"""Warm-up from 1/10 of `LEARNING_RATE` over the first 15% of the steps,
then a cosine to 0 (kerascnn.training._schedules)."""

MODEL = {"pooling": "strided", "dense_units": 0}
"""The `build_cnn` arguments `fit` and `kerascnn train` use where they
differ from `build_cnn`'s own defaults (the user's `model_kwargs` win):
each block downsamples with a stride-2 last conv instead of a max pool
(2.5x fewer multiply-adds at the default depth, so more epochs fit in the
same time), and the flattened features go through dropout straight to the
softmax, without the hidden Dense(128) layer."""

AUGMENT = None
"""`fit` augments only when asked: the right augmentation depends on the
images (no flips for digits or text, flips for most photographs)."""

DIGITS_AUGMENT = "digits"
"""The augmentation the quickstart uses on mnist5k: the "digits" preset
(rotations, shifts and zooms, never flips)."""

QUICKSTART_EARLY_STOPPING = False
"""The quickstart trains its fixed one-cycle budget to the end: with
augmentation the validation loss of 500 images is noisy, and patience 5
stopped 30-epoch runs at epochs 18-27, before the annealing that the
schedule is for (docs/training.md)."""

EARLY_STOPPING_PATIENCE = 5
VALIDATION_SPLIT = 0.1
TEST_SPLIT = 0.1
SEED = 42
