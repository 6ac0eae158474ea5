"""Loading a folder of images with one sub-folder per class."""

import os
import warnings

import numpy as np

from kerascnn import _validation
from kerascnn.datasets import files as _files

#: File extensions read as images (the ones `keras.utils.image_dataset_from_directory` reads).
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")

_COLOR_MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
_WIDE_GRAY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "lanczos", "box", "hamming")


def _error(name, expectation, received):
    raise _validation.ArgumentError(
        f"Argument `{name}` must be {expectation}. Received: {received}")


def _class_folders(path):
    entries = sorted(os.listdir(path))
    folders = [e for e in entries
               if not e.startswith(".") and os.path.isdir(os.path.join(path, e))]
    if not folders:
        _error("path", "a directory with one sub-folder of images per class",
               f"path={path!r} (no class sub-folders)")
    if len(folders) < 2:
        _error("path", "a directory with at least two class sub-folders",
               f"path={path!r} (only the class folder {folders[0]!r})")
    return folders


def _image_files(folder):
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and name.lower().endswith(
                    IMAGE_EXTENSIONS):
                files.append(os.path.join(root, name))
    return files


def _read(file_path, mode):
    from PIL import Image

    with Image.open(file_path) as image:
        image.load()
        if image.mode in _WIDE_GRAY_MODES:
            # 16-bit grayscale (PNG): Pillow's convert() would clip every
            # value above 255 to white; scale 0..65535 to 0..255 instead,
            # as the streamed TensorFlow decoding does.
            wide = np.asarray(image, dtype=np.float64)
            image = Image.fromarray(
                np.round(wide / 257.0).clip(0, 255).astype(np.uint8), "L")
        return image.convert(mode)


def load_directory(path, image_size=None, color_mode="rgb", on_error="raise",
                   interpolation="bilinear"):
    """Loads a folder of images, one sub-folder per class, into numpy arrays.

    `path/<class_name>/<image files>` like
    `keras.utils.image_dataset_from_directory` (class names are the sorted
    sub-folder names; files ending in .bmp, .gif, .jpeg, .jpg or .png are
    read, others ignored). What this adds over Keras: every file is opened
    with Pillow before anything is returned, so a corrupt file is reported
    by name here (or skipped with a warning, `on_error="skip"`) instead of
    failing later deep inside a TensorFlow decode op; images of different
    sizes are refused with a clear message unless `image_size` asks for a
    resize; an empty folder, a folder without class sub-folders, a single
    class or an empty class folder are clear errors. The result is held in
    memory, which suits the small datasets this package targets.

    Args:
        path: Path of the directory.
        image_size: `None`, an integer or a `(height, width)` pair. `None`
            requires every image to have the same size; otherwise images are
            resized to it. Defaults to `None`.
        color_mode: `"rgb"` (3 channels), `"grayscale"` (1) or `"rgba"` (4).
            Defaults to `"rgb"`.
        on_error: What to do with a file Pillow cannot read: `"raise"` an
            `ArgumentError` naming the file, or `"skip"` it with a
            `warnings.warn` naming it. Defaults to `"raise"`.
        interpolation: Pillow resampling filter used with `image_size`:
            `"bilinear"`, `"nearest"`, `"bicubic"`, `"lanczos"`, `"box"` or
            `"hamming"`. Defaults to `"bilinear"`.

    Returns:
        Tuple `(images, labels, class_names)`: uint8 array
        `(n, height, width, channels)`, int64 labels `(n,)` indexing
        `class_names`, a list of strings.

    Raises:
        ArgumentError: for a missing path, a bad layout, a corrupt file
            (`on_error="raise"`), or mixed sizes without `image_size`.
    """
    path = _validation.check_existing_path("path", path, kind="directory")
    if image_size is not None:
        image_size = _validation.check_image_size("image_size", image_size)
    mode = _COLOR_MODES[_validation.check_option(
        "color_mode", color_mode, tuple(_COLOR_MODES))]
    on_error = _validation.check_option("on_error", on_error, ("raise", "skip"))
    interpolation = _validation.check_option(
        "interpolation", interpolation, _INTERPOLATIONS)

    class_names = _class_folders(path)
    files = []
    for index, name in enumerate(class_names):
        found = _image_files(os.path.join(path, name))
        if not found:
            _error("path", "a directory whose every class sub-folder holds "
                   "images (" + ", ".join(IMAGE_EXTENSIONS) + ")",
                   f"path={path!r} (class folder {name!r} has no images)")
        files.extend((file_path, index) for file_path in found)

    from PIL import Image

    resample = getattr(Image.Resampling, interpolation.upper())
    images, labels, first = [], [], None
    for file_path, index in files:
        try:
            image = _read(file_path, mode)
        except Exception as error:  # Pillow raises several types.
            if isinstance(error, Image.DecompressionBombError):
                error = _files._reason(error)
            if on_error == "raise":
                _error("path", "a directory of readable images (pass "
                       "on_error='skip' to skip unreadable files)",
                       f"corrupt image file {file_path!r} ({error})")
            warnings.warn(f"Skipping unreadable image file {file_path!r}: "
                          f"{error}", stacklevel=2)
            continue
        if image_size is not None:
            if (image.height, image.width) != image_size:
                image = image.resize((image_size[1], image_size[0]), resample)
        elif first is None:
            first = (file_path, (image.height, image.width))
        elif (image.height, image.width) != first[1]:
            _error("image_size", "given when the images differ in size "
                   "(e.g. image_size=(32, 32) resizes them all)",
                   f"image_size=None with {first[0]!r} of size {first[1]} "
                   f"and {file_path!r} of size {(image.height, image.width)}")
        array = np.asarray(image, dtype=np.uint8)
        if array.ndim == 2:
            array = array[..., np.newaxis]
        images.append(array)
        labels.append(index)
    present = set(labels)
    if len(present) < 2:
        _error("path", "a directory with readable images in at least two "
               "classes", f"path={path!r} (readable images only in "
               f"{[class_names[i] for i in sorted(present)]})")
    missing = [class_names[i] for i in range(len(class_names))
               if i not in present]
    if missing:
        _error("path", "a directory whose every class holds a readable image",
               f"path={path!r} (no readable image in class folders {missing})")
    return np.stack(images), np.asarray(labels, dtype=np.int64), class_names
