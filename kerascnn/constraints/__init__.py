"""Weight constraints: `MaxNorm` with per-unit axes taken from the kernel."""

from kerascnn.constraints.max_norm import MaxNorm

__all__ = ["MaxNorm"]
