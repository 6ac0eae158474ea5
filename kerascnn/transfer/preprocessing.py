"""The backbone's input preprocessing as a registered, serializable layer."""

import keras
from keras import ops

from kerascnn import _validation

# The per-family modes of `keras.applications.imagenet_utils.preprocess_input`.
PREPROCESSING_MODES = ("caffe", "tf", "torch", "none")

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="kerascnn")
class BackbonePreprocessing(keras.layers.Layer):
    """Applies a `keras.applications` backbone's `preprocess_input` as a layer.

    A Keras 3 model that calls a bare `preprocess_input` function does not
    save, reload and export; this layer computes the same numbers (tested
    against each family's `preprocess_input`) and has a config, so the whole
    transfer model takes raw pixels (0-255) in a `.keras` file and in a
    SavedModel. It can also turn one-channel (grayscale) images into the
    three channels an ImageNet backbone expects.

    What it adds to Keras: `preprocess_input` is a function, not a layer;
    `keras.layers.Rescaling`/`Normalization` cover the "tf" and "torch"
    modes but not the "caffe" RGB-to-BGR flip, and none of them converts
    grayscale.

    Args:
        mode: One of `"caffe"` (RGB to BGR, minus the ImageNet mean: ResNet,
            VGG), `"tf"` (scale to [-1, 1]: ResNetV2, MobileNet V1/V2,
            Inception, Xception, NASNet), `"torch"` (scale to [0, 1], then
            ImageNet mean and std: DenseNet) or `"none"` (the backbone has
            its own preprocessing inside: EfficientNet, EfficientNetV2,
            MobileNetV3, ConvNeXt, or a user's model). Defaults to `"tf"`.
        grayscale_to_rgb: Boolean; if `True`, a one-channel input is
            repeated to three channels first. Defaults to `False`.

    Call arguments:
        inputs: Float tensor `(batch, height, width, channels)` of raw pixels
            in [0, 255], channels last.

    Returns:
        The preprocessed float32 tensor, with 3 channels if
        `grayscale_to_rgb`.
    """

    def __init__(self, mode="tf", grayscale_to_rgb=False, **kwargs):
        mode = _validation.check_option("mode", mode, PREPROCESSING_MODES)
        grayscale_to_rgb = _validation.check_bool(
            "grayscale_to_rgb", grayscale_to_rgb)
        super().__init__(**kwargs)
        self.mode = mode
        self.grayscale_to_rgb = grayscale_to_rgb

    def build(self, input_shape):
        channels = input_shape[-1]
        if len(input_shape) != 4:
            raise ValueError(
                "BackbonePreprocessing expects images of shape (batch, "
                "height, width, channels). "
                f"Received: input_shape={input_shape}")
        if self.grayscale_to_rgb and channels != 1:
            raise ValueError(
                "BackbonePreprocessing(grayscale_to_rgb=True) expects one "
                f"input channel. Received: input_shape={input_shape}")
        if (not self.grayscale_to_rgb and self.mode in ("caffe", "torch")
                and channels != 3):
            raise ValueError(
                f"BackbonePreprocessing(mode={self.mode!r}) expects 3 (RGB) "
                f"channels. Received: input_shape={input_shape}")

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.grayscale_to_rgb:
            x = ops.concatenate([x, x, x], axis=-1)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1)
            return x - ops.convert_to_tensor(_CAFFE_MEAN_BGR, "float32")
        if self.mode == "torch":
            x = x / 255.0
            mean = ops.convert_to_tensor(_TORCH_MEAN, "float32")
            std = ops.convert_to_tensor(_TORCH_STD, "float32")
            return (x - mean) / std
        return x

    def compute_output_shape(self, input_shape):
        if self.grayscale_to_rgb:
            return tuple(input_shape[:-1]) + (3,)
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode,
                "grayscale_to_rgb": self.grayscale_to_rgb}
