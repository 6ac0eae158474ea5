"""`kerascnn predict`: classify image files with an exported model.

Reads the export's `metadata.json` for the class names and the input shape,
converts each image with Pillow to the model's channels and size, and runs
the SavedModel's `serve` signature (no Keras model is rebuilt).
"""

import argparse
import os

import numpy as np

from kerascnn import _validation
from kerascnn.cli import _common


def register(subparsers):
    parser = _common.add_parser(
        subparsers, "predict",
        help_text="classify image files with an exported model",
        description=(
            "Classify image files with a model exported by `kerascnn "
            "quickstart`, `kerascnn train` or kerascnn.export.export_model. "
            "Each image is converted to the model's channels (grayscale or "
            "RGB) and resized to its input size; one line is printed per "
            "image: 'IMAGE: class (probability)'. Images must look like the "
            "training data (MNIST: a light digit on a dark background)."),
        example="kerascnn predict --model saved_models/mnist5k_cnn digit.png")
    parser.add_argument("--model", required=True, metavar="EXPORT",
                        default=argparse.SUPPRESS,
                        help="export folder (e.g. saved_models/mnist5k_cnn)")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (PNG, JPEG, BMP, ...)")
    parser.add_argument("--top", type=_common.positive_int, default=1,
                        help="print the K most likely classes per image")
    parser.set_defaults(func=run)
    return parser


def load_image(path, input_shape):
    """Reads `path` with Pillow as an array of the model's input shape.

    `input_shape` is `(height, width, channels)` with 1 (grayscale) or 3
    (RGB) channels. Returns a uint8 array of that shape.
    """
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image file: {path!r}")
    height, width, channels = (int(d) for d in input_shape)
    if channels not in (1, 3, 4):
        _validation.fail("model", "an export with 1, 3 or 4 input channels",
                         f"input shape {tuple(input_shape)}")
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if image.size != (width, height):
                image = image.resize((width, height), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise _validation.ArgumentError(
            "Argument `images` must be readable image files. Received: "
            f"{path!r} ({error})") from None
    return array.reshape(height, width, channels)


def run(args):
    from kerascnn.export import load_export, predict_export

    exported = load_export(args.model)
    input_shape = exported.metadata["input_shape"]
    if len(input_shape) != 3 or any(d is None for d in input_shape):
        _validation.fail("model", "an export with a fixed (height, width, "
                         "channels) input", f"input shape {input_shape}")
    batch = np.stack([load_image(path, input_shape) for path in args.images])
    probabilities = predict_export(exported, batch)
    num_classes = probabilities.shape[1]
    names = exported.class_names or [str(i) for i in range(num_classes)]
    top = min(args.top, num_classes)
    for path, row in zip(args.images, probabilities):
        order = np.argsort(row)[::-1][:top]
        text = ", ".join(f"{names[i]} ({row[i]:.3f})" for i in order)
        print(f"{path}: {text}")
    return 0
