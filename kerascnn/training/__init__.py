"""Training workflow: `fit`, one call from data to a tested, diagnosed
model."""

from kerascnn.training._schedules import SCHEDULES
from kerascnn.training.fit import BALANCE_OPTIONS
from kerascnn.training.fit import FitResult
from kerascnn.training.fit import fit

__all__ = ["BALANCE_OPTIONS", "FitResult", "SCHEDULES", "fit"]
