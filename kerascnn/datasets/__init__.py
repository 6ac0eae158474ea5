"""Offline datasets and image-folder loading.

`load_mnist5k` and `load_digits` need no network; `load_directory` reads a
folder with one sub-folder per class and checks it before returning arrays;
`load` dispatches between them (and accepts in-memory arrays).
"""

from kerascnn.datasets.directory import IMAGE_EXTENSIONS, load_directory
from kerascnn.datasets.embedded import load_digits, load_mnist5k
from kerascnn.datasets.registry import DATASETS, load

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "load",
    "load_digits",
    "load_directory",
    "load_mnist5k",
]
