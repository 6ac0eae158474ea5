"""Learning-rate schedules: cyclical learning rates (tfa replacements).

Step, exponential and 1/t decay are Keras built-ins
(`keras.optimizers.schedules.PiecewiseConstantDecay`, `ExponentialDecay`,
`InverseTimeDecay`); see docs/schedules_and_callbacks.md.
"""

from kerascnn.schedules.cyclical_learning_rate import (
    CyclicalLearningRate,
    ExponentialCyclicalLearningRate,
    Triangular2CyclicalLearningRate,
    TriangularCyclicalLearningRate,
)

__all__ = [
    "CyclicalLearningRate",
    "TriangularCyclicalLearningRate",
    "Triangular2CyclicalLearningRate",
    "ExponentialCyclicalLearningRate",
]
