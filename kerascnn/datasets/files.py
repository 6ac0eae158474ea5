"""Image files: listing a class folder, the fast pre-scan, and decoding.

The streamed pipelines of `kerascnn.data.sources` never hold a folder in
memory: they list it (`list_directory`), check every file once with Pillow
before training (`scan_files`: header and integrity, no pixel decoding) and
decode in TensorFlow (`decode_image`), in parallel, batch by batch.
`read_image` decodes one file exactly as training does, for prediction.
"""

import collections
import concurrent.futures
import os
import warnings

import numpy as np

from kerascnn import _validation

#: Pillow formats that TensorFlow's `tf.io.decode_image` decodes.
DECODABLE_FORMATS = ("PNG", "JPEG", "MPO", "GIF", "BMP")

#: `color_mode` name -> number of channels.
COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}

#: Interpolations `tf.image.resize` accepts (Keras' names).
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3",
                  "lanczos5", "gaussian", "mitchellcubic")

# Pillow modes without colour: a folder of only these is grayscale.
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def list_directory(path):
    """Lists `path/<class>/<image files>` without opening a file.

    Class names are the sorted sub-folder names and files are sorted within
    each class, as in `keras.utils.image_dataset_from_directory`; hidden
    files and folders are skipped, sub-folders of a class are walked.

    Returns:
        Tuple `(paths, labels, class_names)`: a list of file paths, an int64
        array of class indices and the list of class names.

    Raises:
        ArgumentError: for a missing path, fewer than two class folders or
            a class folder without images.
    """
    from kerascnn.datasets.directory import (IMAGE_EXTENSIONS,
                                             _class_folders, _image_files)

    path = _validation.check_existing_path("path", path, kind="directory")
    class_names = _class_folders(path)
    paths, labels = [], []
    for index, name in enumerate(class_names):
        found = _image_files(os.path.join(path, name))
        if not found:
            raise _validation.ArgumentError(
                "Argument `path` must be a directory whose every class "
                "sub-folder holds images (" + ", ".join(IMAGE_EXTENSIONS)
                + f"). Received: path={path!r} (class folder {name!r} has "
                "no images)")
        paths.extend(found)
        labels.extend([index] * len(found))
    return paths, np.asarray(labels, np.int64), class_names


#: What `scan_files` found: per kept file its size `(height, width)`,
#: Pillow mode and format; the indices of the kept files; and the
#: `(path, reason)` of every unreadable file.
ScanResult = collections.namedtuple(
    "ScanResult", ["keep", "sizes", "modes", "formats", "unreadable"])


def _inspect(path):
    """`(height, width, mode, format)` of one file, or raises."""
    from PIL import Image

    with Image.open(path) as image:
        size, mode, kind = image.size, image.mode, image.format
        image.verify()
    if kind not in DECODABLE_FORMATS:
        raise ValueError(f"{kind} images cannot be decoded by TensorFlow "
                         "(PNG, JPEG, GIF and BMP can)")
    if kind in ("JPEG", "MPO"):
        # Pillow's verify() does not read JPEG data; a file cut short (an
        # interrupted copy) would only fail inside TensorFlow mid-epoch.
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - 4096))
            if b"\xff\xd9" not in handle.read():
                raise ValueError("truncated JPEG (no end-of-image marker)")
    return size[1], size[0], mode, kind


def _reason(error):
    from PIL import Image

    if isinstance(error, Image.DecompressionBombError):
        return (f"{error} (a decompression-bomb guard: resize the image, or "
                "raise PIL.Image.MAX_IMAGE_PIXELS if you trust it)")
    return f"{type(error).__name__}: {error}"


def scan_files(paths, on_error="raise", workers=None, name="path"):
    """Checks every image file before training, without decoding pixels.

    Each file is opened with Pillow (header) and `verify()`-ed (PNG chunks
    and checksums; JPEG files must end in an end-of-image marker), in a
    thread pool. This finds corrupt, truncated or unsupported files and
    decompression bombs up front, naming the file, instead of a crash deep
    inside TensorFlow in the middle of an epoch; it also gives each
    image's size and mode, from which `image_size` and `color_mode` are
    inferred.

    Args:
        paths: Sequence of file paths.
        on_error: `"raise"` an `ArgumentError` naming the first unreadable
            file, or `"skip"` every unreadable file with one warning naming
            them. Defaults to `"raise"`.
        workers: Threads. Defaults to `None` (`min(32, 4 * cpus)`).
        name: Argument name used in errors. Defaults to `"path"`.

    Returns:
        A `ScanResult(keep, sizes, modes, formats, unreadable)`.
    """
    on_error = _validation.check_option("on_error", on_error,
                                        ("raise", "skip"))
    if workers is None:
        workers = min(32, 4 * (os.cpu_count() or 1))
    paths = list(paths)
    results = [None] * len(paths)

    def run(index):
        try:
            results[index] = _inspect(paths[index])
        except Exception as error:  # Pillow raises many types.
            results[index] = error

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        # Chunks keep the executor's bookkeeping small for 10^6 files.
        for start in range(0, len(paths), 4096):
            list(pool.map(run, range(start, min(len(paths), start + 4096))))
    unreadable = [(paths[i], _reason(r)) for i, r in enumerate(results)
                  if isinstance(r, Exception)]
    if unreadable and on_error == "raise":
        file_path, reason = unreadable[0]
        more = (f"; {len(unreadable) - 1} more unreadable file(s)"
                if len(unreadable) > 1 else "")
        raise _validation.ArgumentError(
            f"Argument `{name}` must hold readable images (pass "
            "on_error='skip', or --on-error skip, to leave unreadable files "
            f"out). Received: corrupt image file {file_path!r} ({reason})"
            f"{more}")
    if unreadable:
        listed = ", ".join(repr(p) for p, _ in unreadable[:20])
        if len(unreadable) > 20:
            listed += f" and {len(unreadable) - 20} more"
        warnings.warn(f"Skipping {len(unreadable)} unreadable image file(s): "
                      f"{listed} (first: {unreadable[0][1]})", stacklevel=3)
    keep = np.asarray([i for i, r in enumerate(results)
                       if not isinstance(r, Exception)], np.int64)
    good = [results[i] for i in keep]
    sizes = np.asarray([(r[0], r[1]) for r in good], np.int64).reshape(-1, 2)
    return ScanResult(keep=keep, sizes=sizes, modes=[r[2] for r in good],
                      formats=[r[3] for r in good], unreadable=unreadable)


_NATIVE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def native_decoding(scan, channels):
    """Whether every scanned file is 8-bit with exactly `channels` channels
    (and not a GIF), so that TensorFlow's plain uint8 decoding at that
    channel count is exact and no conversion is needed."""
    return all(mode == _NATIVE_MODES[channels] and kind != "GIF"
               for mode, kind in zip(scan.modes, scan.formats))


def infer_color_mode(modes):
    """`"grayscale"` when every Pillow mode has no colour, else `"rgb"`."""
    return "grayscale" if all(m in _GRAY_MODES for m in modes) else "rgb"


def check_color_mode(color_mode, allow_none=True):
    """Validates `color_mode` (`None` = infer when `allow_none`)."""
    if color_mode is None and allow_none:
        return None
    return _validation.check_option("color_mode", color_mode,
                                    tuple(COLOR_MODES))


def _gray(rgb):
    import tensorflow as tf

    # Pillow's ITU-R 601-2 luma in its fixed-point form, exact in float32:
    # L = (19595 R + 38470 G + 7471 B + 32768) >> 16.
    weights = tf.constant([19595.0, 38470.0, 7471.0])
    return tf.floor((tf.reduce_sum(rgb * weights, axis=-1, keepdims=True)
                     + 32768.0) / 65536.0)


def _to_channels(image, channels):
    import tensorflow as tf

    full = tf.fill(tf.concat([tf.shape(image)[:-1], [1]], 0), 255.0)
    first = image[..., :1]
    if channels == 1:
        branches = [lambda: image, lambda: first, lambda: _gray(image),
                    lambda: _gray(image[..., :3])]
    elif channels == 3:
        branches = [lambda: tf.tile(image, [1, 1, 3]),
                    lambda: tf.tile(first, [1, 1, 3]),
                    lambda: image, lambda: image[..., :3]]
    else:
        branches = [lambda: tf.concat([tf.tile(image, [1, 1, 3]), full], -1),
                    lambda: tf.concat([tf.tile(first, [1, 1, 3]),
                                       image[..., 1:2]], -1),
                    lambda: tf.concat([image, full], -1), lambda: image]
    return tf.switch_case(tf.shape(image)[-1] - 1, branches)


def decode_image(contents, channels=3, image_size=None,
                 interpolation="bilinear", resize=True):
    """Decodes encoded image bytes into float32 pixels `0..255` (TF graph op).

    `tf.io.decode_image` (PNG, JPEG, GIF's first frame, BMP) at the file's
    own bit depth, then scaled to `0..255` and rounded: 8-bit images keep
    their exact values and 16-bit PNGs are scaled (`value / 257`), never
    clipped. Channels are converted as Pillow does: grayscale is repeated
    into RGB, alpha is dropped for RGB (added as 255 for RGBA), and RGB
    becomes grayscale by Pillow's ITU-R 601-2 luma. With `image_size` the
    image is resized (`tf.image.resize`, like Keras' folder loader).

    Args:
        contents: Scalar string tensor, the file's bytes.
        channels: 1, 3 or 4. Defaults to `3`.
        image_size: `None` or `(height, width)`. Defaults to `None`.
        interpolation: `tf.image.resize` method. Defaults to `"bilinear"`.
        resize: Boolean; `False` only declares `image_size` as the static
            shape (when a pre-scan found every image of that size).
            Defaults to `True`.

    Returns:
        A float32 tensor `(height, width, channels)`.
    """
    import tensorflow as tf

    image = tf.io.decode_image(contents, channels=0, dtype=tf.float32,
                               expand_animations=False)
    image = tf.round(image * 255.0)
    image = _to_channels(image, channels)
    if image_size is not None:
        if resize:
            image = tf.image.resize(image, image_size, method=interpolation)
        image.set_shape((image_size[0], image_size[1], channels))
    else:
        image.set_shape((None, None, channels))
    return image


def read_image(path, image_size=None, color_mode="rgb",
               interpolation="bilinear"):
    """Reads one image file into an array, exactly as training reads it.

    The same checks as the pre-scan of a training folder (a corrupt or
    unsupported file, or a decompression bomb, is an `ArgumentError` naming
    the file) and the same TensorFlow decoding as the streamed training
    pipeline (`decode_image`): 16-bit PNGs scaled to `0..255`, palette and
    RGBA images converted, resized to `image_size` when given. Use it to
    feed a model trained by kerascnn on a folder.

    Args:
        path: Path of a PNG, JPEG, GIF or BMP file.
        image_size: `None` (keep the file's size), an integer or a
            `(height, width)` pair. Defaults to `None`.
        color_mode: `"rgb"`, `"grayscale"` or `"rgba"`. Defaults to
            `"rgb"`.
        interpolation: Resize method (`tf.image.resize`). Defaults to
            `"bilinear"`.

    Returns:
        A float32 array `(height, width, channels)` of raw pixels `0..255`.

    Raises:
        ArgumentError: for a missing, unreadable or too large file or a bad
            argument.
    """
    import tensorflow as tf

    if isinstance(path, (str, os.PathLike)) and os.path.isdir(path):
        _validation.fail("path", "an image file, not a directory",
                         os.fspath(path))
    path = _validation.check_existing_path("path", path, kind="file")
    if image_size is not None:
        image_size = _validation.check_image_size("image_size", image_size)
    channels = COLOR_MODES[check_color_mode(color_mode, allow_none=False)]
    interpolation = _validation.check_option("interpolation", interpolation,
                                             INTERPOLATIONS)
    scan_files([path], on_error="raise")
    image = decode_image(tf.io.read_file(path), channels, image_size,
                         interpolation)
    return image.numpy()
