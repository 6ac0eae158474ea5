"""Keras layers for training CNNs: GroupNorm, inverted/MC dropout, DropConnect.

`GroupNormalization` replaces `tfa.layers.GroupNormalization` (same
signature and numbers). `InvertedDropout` and `mc_predict` give Monte-Carlo
dropout uncertainty; `DropConnectDense` / `DropConnectConv2D` drop weights
instead of activations.
"""

from kerascnn.layers.dropconnect import DropConnectConv2D, DropConnectDense
from kerascnn.layers.dropout import InvertedDropout, mc_predict
from kerascnn.layers.group_normalization import GroupNormalization

__all__ = [
    "DropConnectConv2D",
    "DropConnectDense",
    "GroupNormalization",
    "InvertedDropout",
    "mc_predict",
]
