"""Utilities: convolution arithmetic and memory estimates."""

from kerascnn.utils.conv_arithmetic import conv_output_size
from kerascnn.utils.memory import estimate_memory

__all__ = ["conv_output_size", "estimate_memory"]
