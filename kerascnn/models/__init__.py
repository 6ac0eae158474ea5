"""Models: `build_cnn`, a CNN builder that checks its conv stack first.

`cnn_output_shapes` walks the stack with the lectures' output-volume formula
and names the layer where an input becomes too small; `NORMALIZATIONS` and
`POOLINGS` list the accepted choices (for tuners and CLIs).
"""

from kerascnn.models.cnn import NORMALIZATIONS
from kerascnn.models.cnn import POOLINGS
from kerascnn.models.cnn import auto_depth
from kerascnn.models.cnn import build_cnn
from kerascnn.models.cnn import cnn_output_shapes

__all__ = ["auto_depth", "build_cnn", "cnn_output_shapes", "NORMALIZATIONS",
           "POOLINGS"]
