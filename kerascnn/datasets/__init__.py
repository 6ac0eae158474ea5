"""Offline datasets and image-folder loading.

`load_mnist5k` and `load_digits` need no network; `load_directory` reads a
folder with one sub-folder per class and checks it before returning arrays;
`load` dispatches between them (and accepts in-memory arrays). For
streaming, `list_directory` lists a folder, `scan_files` pre-scans its files
(corrupt ones named, sizes and modes read from headers), `decode_image` is
the TensorFlow decoding of the streamed pipelines and `read_image` reads one
file exactly as training does (for prediction).
"""

from kerascnn.datasets.directory import IMAGE_EXTENSIONS, load_directory
from kerascnn.datasets.embedded import load_digits, load_mnist5k
from kerascnn.datasets.files import (COLOR_MODES, ScanResult, decode_image,
                                     list_directory, read_image, scan_files)
from kerascnn.datasets.registry import (DATASETS, SUITED_AUGMENTATION,
                                        check_dataset_name, load,
                                        suited_augmentation)

__all__ = [
    "COLOR_MODES",
    "DATASETS",
    "SUITED_AUGMENTATION",
    "IMAGE_EXTENSIONS",
    "ScanResult",
    "check_dataset_name",
    "decode_image",
    "list_directory",
    "load",
    "load_digits",
    "load_directory",
    "load_mnist5k",
    "read_image",
    "scan_files",
    "suited_augmentation",
]
