"""Tuning: a KerasTuner search over the lecture's CNN hyperparameters.

`CNNHyperModel` draws filter size, stride, padding, depth (and pooling) only
among the combinations whose output volume `(W1 - F + 2P) / S + 1` stays a
positive integer for the input, plus base filters, normalization, dropout and
a log-scale learning rate. `search` runs KerasTuner's Hyperband, Bayesian,
random or grid search over it with early stopping, class weights, cyclical
learning rates, multi-GPU mirroring, memory release between trials, resume
and chief/worker distribution, and writes the trials table and plot.
"""

from kerascnn.tuning.hypermodel import SCHEDULES, CNNHyperModel
from kerascnn.tuning.search import OBJECTIVES, SearchResult, search
from kerascnn.tuning.space import DEFAULT_SPACE, SearchSpace, SpaceReport
from kerascnn.tuning.tuners import TUNERS, GridSearchOracle

__all__ = [
    "CNNHyperModel",
    "DEFAULT_SPACE",
    "GridSearchOracle",
    "OBJECTIVES",
    "SCHEDULES",
    "SearchResult",
    "SearchSpace",
    "SpaceReport",
    "TUNERS",
    "search",
]
