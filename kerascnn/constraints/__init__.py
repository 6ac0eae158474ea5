"""Weight constraints: `MaxNorm` with per-unit axes inferred from the kernel."""

from kerascnn.constraints.max_norm import MaxNorm

__all__ = ["MaxNorm"]
