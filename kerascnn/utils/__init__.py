"""Utilities: convolution arithmetic and memory estimates."""

from kerascnn.utils.conv_arithmetic import conv_output_size

__all__ = ["conv_output_size"]
