"""Callbacks: early stopping, the learning-rate range test, loss-curve diagnosis."""

from kerascnn.callbacks.early_stopping import EarlyStopping
from kerascnn.callbacks.loss_curve_diagnosis import (
    Diagnosis,
    LossCurveDiagnosis,
    diagnose_history,
)
from kerascnn.callbacks.lr_finder import (
    LearningRateFinder,
    LRFinderResult,
    find_learning_rate,
)

__all__ = [
    "EarlyStopping",
    "LearningRateFinder",
    "find_learning_rate",
    "LRFinderResult",
    "LossCurveDiagnosis",
    "diagnose_history",
    "Diagnosis",
]
