"""The defaults of `fit`, `kerascnn train` and `kerascnn quickstart`, in one place.

Chosen by measurement (docs/training.md, "Defaults": seeds' mean and spread
of each candidate on mnist5k and digits); the workflows and the CLI import
them from here. The model's own defaults (the flatten head for small feature
maps, dropout 0.5) live in `kerascnn.models.build_cnn`.
"""

EPOCHS = 16
"""Epochs of the run. The one-cycle schedule below anneals to 0 at the last
epoch, so the run ends on its best weights (hence `EARLY_STOPPING`'s "auto"
leaves early stopping off under it)."""

BATCH_SIZE = 64
OPTIMIZER = "adam"
LEARNING_RATE = 4e-3
"""The peak rate of `SCHEDULE` (docs/training.md, "Defaults": on mnist5k
with 3 blocks, 16 epochs at 4e-3 matched 20 epochs at 3e-3 in 0.8x the
time)."""

SCHEDULE = "one_cycle"
"""Warm-up from 1/10 of `LEARNING_RATE` over the first 15% of the steps,
then a cosine to 0 (kerascnn.training._schedules)."""

MODEL = {"pooling": "strided", "dense_units": 0, "depth": "auto"}
"""The `build_cnn` arguments `fit` and `kerascnn train` use where they
differ from `build_cnn`'s own defaults (the user's `model_kwargs` win):
each block downsamples with a stride-2 last conv instead of a max pool
(2.5x fewer multiply-adds per block, so more epochs fit in the same time);
blocks are added until the feature map is about 4x4 (`depth="auto"`,
`kerascnn.models.auto_depth`: 3 blocks on 28x28 digits, 2 on 8x8, at most
3); and the flattened features go through dropout straight to the softmax,
without the hidden Dense(128) layer."""

AUGMENT = "auto"
"""`"auto"`: a built-in dataset gets the augmentation measured to help on it
(`kerascnn.datasets.SUITED_AUGMENTATION`: the "digits" preset on mnist5k,
none on the 8x8 digits); a folder or arrays are not augmented, because the
right augmentation depends on the images (no flips for digits or text,
flips for most photographs)."""

EARLY_STOPPING = "auto"
"""`"auto"`: no early stopping under the one-cycle schedule, which anneals
to 0 over its fixed budget (patience 5 on 500 noisy validation images
stopped 30-epoch mnist5k runs at epochs 18-27, before the annealing,
docs/training.md); early stopping with the best weights restored under any
other schedule."""

EARLY_STOPPING_PATIENCE = 5
VALIDATION_SPLIT = 0.1
TEST_SPLIT = 0.1
SEED = 42
