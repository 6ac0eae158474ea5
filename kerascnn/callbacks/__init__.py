"""Callbacks: early stopping, the learning-rate range test, loss-curve diagnosis."""

from kerascnn.callbacks.early_stopping import EarlyStopping

__all__ = ["EarlyStopping"]
