"""Data handling for CNN training: splits, normalization, imbalance, pipelines.

- `resolve_data`, `ImageSource`, `ResolvedData`: every kind of input
  (arrays, names, class folders streamed from disk, `tf.data`,
  `PyDataset`) checked and split once, as streamable sources.
- `split_dataset`, `split_indices`: stratified, seeded
  train/validation/test splits.
- `normalization_layer`: per-channel zero-centering and scaling from the
  training split, inside the model.
- `class_weights`, `imbalance_ratio`, `detect_imbalance`, `class_counts`:
  label imbalance, measured and reweighted.
- `make_dataset`, `samples_per_epoch`: `tf.data` pipelines with over-,
  under- and balanced batch sampling.
- `augmentation`, `list_augmentation_presets`, `Augmentation`: Keras
  augmentation presets that stay off in exported models.
- `classification_report`, `ClassificationReport`: per-class metrics,
  ROC/PR AUC, confusion matrix.
"""

from kerascnn.data.augmentation import (Augmentation, augmentation,
                                        list_augmentation_presets)
from kerascnn.data.imbalance import (class_counts, class_weights,
                                     detect_imbalance, imbalance_ratio)
from kerascnn.data.metrics import ClassificationReport, classification_report
from kerascnn.data.pipeline import make_dataset, samples_per_epoch
from kerascnn.data.preprocessing import channel_statistics, normalization_layer
from kerascnn.data.sources import (ImageSource, ResolvedData,
                                   resolve_data)
from kerascnn.data.splits import Splits, split_dataset, split_indices

__all__ = [
    "Augmentation",
    "ClassificationReport",
    "ImageSource",
    "ResolvedData",
    "Splits",
    "augmentation",
    "channel_statistics",
    "class_counts",
    "class_weights",
    "classification_report",
    "detect_imbalance",
    "imbalance_ratio",
    "list_augmentation_presets",
    "make_dataset",
    "normalization_layer",
    "resolve_data",
    "samples_per_epoch",
    "split_dataset",
    "split_indices",
]
