"""`kerascnn predict`: classify image files with an exported model.

Reads the export's `metadata.json` for the class names and the input shape,
decodes each image as training decodes a folder (16-bit PNGs scaled, not
clipped; decompression bombs refused) at the model's channels and size, and
runs the SavedModel's `serve` signature (no Keras model is rebuilt). A folder
argument stands for every image inside it. Each failure is one line naming
the file: a corrupt SavedModel, a broken `metadata.json`, an unreadable
image.
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
                        help="image files (PNG, JPEG, BMP, GIF), or folders "
                             "(every image inside, sorted)")
    parser.add_argument("--top", type=_common.positive_int, default=1,
                        help="print the K most likely classes per image")
    parser.set_defaults(func=run)
    return parser


IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_COLOR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}


def image_paths(arguments):
    """The image files named by `arguments`; a folder gives every image in it.

    Raises:
        ArgumentError: for a missing path or a folder without images.
    """
    paths = []
    for path in arguments:
        if os.path.isdir(path):
            found = []
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(
                    os.path.join(root, name) for name in sorted(names)
                    if not name.startswith(".")
                    and name.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise _validation.ArgumentError(
                    "Argument `images` must be image files or folders that "
                    "hold images (" + ", ".join(IMAGE_EXTENSIONS) + "). "
                    f"Received: {path!r} (a directory without images)")
            paths.extend(found)
        elif not os.path.isfile(path):
            raise FileNotFoundError(f"no such image file: {path!r}")
        else:
            paths.append(path)
    return paths


def load_image(path, input_shape):
    """Reads `path` as a float32 array of the model's input shape, 0..255.

    `input_shape` is `(height, width, channels)` with 1 (grayscale), 3 (RGB)
    or 4 (RGBA) channels. Decoded as training decodes a folder
    (`kerascnn.datasets.read_image`: 16-bit PNGs scaled to 0..255, not
    clipped; decompression bombs refused), resized to the input size.

    Raises:
        ArgumentError: a directory, or an unreadable, unsupported or too
            large image (one line naming the file).
    """
    height, width, channels = (int(d) for d in input_shape)
    if channels not in _COLOR_MODES:
        _validation.fail("model", "an export with 1, 3 or 4 input channels",
                         f"input shape {tuple(input_shape)}")
    if os.path.isdir(path):
        _validation.fail("images", "image files (a directory is read with "
                         "every image inside)", path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image file: {path!r}")
    try:
        from kerascnn.datasets.files import read_image
    except ImportError:
        read_image = None
    if read_image is not None:
        try:
            array = read_image(path, image_size=(height, width),
                               color_mode=_COLOR_MODES[channels])
        except _validation.ArgumentError as error:
            raise _validation.ArgumentError(
                f"Argument `images` must be readable image files. "
                f"Received: {path!r} ({_reason(error)})") from None
        return np.asarray(array, np.float32).reshape(height, width, channels)
    return _load_with_pillow(path, height, width, channels)


def _reason(error):
    text = str(error)
    marker = "Received: "
    return text.split(marker, 1)[1] if marker in text else text


def _load_with_pillow(path, height, width, channels):
    from PIL import Image, UnidentifiedImageError

    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    try:
        with Image.open(path) as image:
            if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
                # 16-bit: scale 0..65535 to 0..255 as training does.
                wide = np.asarray(image, dtype=np.float64) * (255.0 / 65535.0)
                image = Image.fromarray(
                    np.clip(np.round(wide), 0, 255).astype(np.uint8), "L")
            image = image.convert(mode)
            if image.size != (width, height):
                image = image.resize((width, height), Image.BILINEAR)
            array = np.asarray(image, dtype=np.float32)
    except Image.DecompressionBombError as error:
        raise _validation.ArgumentError(
            "Argument `images` must be images of a sane size. Received: "
            f"{path!r} ({error}; a decompression-bomb guard)") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise _validation.ArgumentError(
            "Argument `images` must be readable image files. Received: "
            f"{path!r} ({error})") from None
    return array.reshape(height, width, channels)


def run(args):
    from kerascnn.export import load_export, predict_export

    # Every image is checked before the model is loaded.
    paths = image_paths(args.images)
    exported = load_export(args.model)
    input_shape = exported.metadata["input_shape"]
    batch = np.stack([load_image(path, input_shape) for path in paths])
    probabilities = predict_export(exported, batch)
    num_classes = probabilities.shape[1]
    names = exported.class_names
    if names is None or len(names) != num_classes:
        names = [str(i) for i in range(num_classes)]
    top = min(args.top, num_classes)
    for path, row in zip(paths, probabilities):
        order = np.argsort(row)[::-1][:top]
        text = ", ".join(f"{names[i]} ({row[i]:.3f})" for i in order)
        print(f"{path}: {text}")
    return 0
