"""The backbone registry, get_backbone, and freezing by block."""

import os
import time

import keras
import numpy as np
import pytest

from kerascnn import transfer
from kerascnn.transfer import registry


def test_list_backbones_and_pattern():
    names = transfer.list_backbones()
    assert names == sorted(names) and len(names) == 40
    assert transfer.list_backbones("efficientnetv2*") == [
        "efficientnetv2b0", "efficientnetv2b1", "efficientnetv2b2",
        "efficientnetv2b3", "efficientnetv2l", "efficientnetv2m",
        "efficientnetv2s"]
    assert transfer.list_backbones("ResNet50*") == ["resnet50", "resnet50v2"]
    assert transfer.list_backbones("nothing*") == []


def test_specs_match_keras_applications():
    for name, spec in transfer.BACKBONES.items():
        assert callable(getattr(keras.applications, spec.constructor))
        assert spec.min_size <= spec.default_size
    assert transfer.get_spec("ResNet50").preprocessing == "caffe"
    assert transfer.get_spec("densenet121").preprocessing == "torch"
    assert transfer.get_spec("xception").min_size == 71
    assert transfer.get_spec("inceptionv3").min_size == 75
    assert transfer.get_spec("convnexttiny").preprocessing == "none"


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError, match="Received: name='resnet5'") as info:
        transfer.get_backbone("resnet5", weights=None)
    assert "resnet50" in str(info.value) and "vgg16" in str(info.value)


def test_input_smaller_than_minimum():
    with pytest.raises(ValueError,
                       match=r"at least \(71, 71\).*Received: input_shape="
                             r"\(64, 64, 3\)"):
        transfer.get_backbone("xception", input_shape=(64, 64, 3),
                              weights=None)


@pytest.mark.parametrize("bad", [(32, 32), (32, 32, 4), "32", (0, 32, 3)])
def test_bad_input_shape(bad):
    with pytest.raises(ValueError, match="Received: input_shape="):
        transfer.get_backbone("mobilenetv3small", input_shape=bad,
                              weights=None)


@pytest.mark.parametrize("bad", ["imagenet21k", 3, "/no/such/file.h5"])
def test_bad_weights(bad):
    with pytest.raises(ValueError, match="Received: weights="):
        transfer.get_backbone("mobilenetv3small", input_shape=(32, 32, 3),
                              weights=bad)


def test_grayscale_is_converted_with_a_note():
    with pytest.warns(UserWarning, match="grayscale"):
        backbone = transfer.get_backbone("mobilenetv2",
                                         input_shape=(32, 32, 1),
                                         weights=None)
    assert backbone.preprocessing.grayscale_to_rgb
    assert "grayscale" in backbone.notes[0]
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1))
    rgb = np.repeat(x, 3, axis=-1)
    np.testing.assert_allclose(
        backbone.model.predict(x, verbose=0),
        backbone.base.predict(rgb / 127.5 - 1.0, verbose=0), rtol=1e-4,
        atol=1e-5)


def test_weights_file_round_trip_and_mismatch(tmp_path):
    source = transfer.get_backbone("mobilenetv3small",
                                   input_shape=(32, 32, 3), weights=None)
    path = str(tmp_path / "small.weights.h5")
    source.base.save_weights(path)
    keras.backend.clear_session()
    loaded = transfer.get_backbone("mobilenetv3small",
                                   input_shape=(32, 32, 3), weights=path)
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3))
    np.testing.assert_allclose(loaded.model.predict(x, verbose=0),
                               source.model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="weights file of the mobilenetv2 "
                                         "architecture.*Received: weights="):
        transfer.get_backbone("mobilenetv2", input_shape=(32, 32, 3),
                              weights=path)


def test_backbone_from_user_model_drops_the_head():
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c2")(x)
    x = keras.layers.MaxPooling2D(name="p2")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(16, activation="relu", name="d1")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
    backbone = transfer.get_backbone(model)
    assert backbone.base.output.shape == (None, 72)
    assert [b.layers for b in backbone.blocks] == [
        ("c1", "bn1"), ("p1", "c2", "p2", "flat")]
    assert backbone.preprocessing.mode == "none"
    explicit = transfer.get_backbone(model, feature_layer="drop",
                                     blocks=["c1"])
    assert [b.output for b in explicit.blocks] == ["c1", "drop"]
    # Fine-tuning the copy never changes the user's model.
    explicit.base.get_layer("c1").kernel.assign(
        np.zeros((3, 3, 1, 4), "float32"))
    assert np.abs(model.get_layer("c1").get_weights()[0]).sum() > 0
    with pytest.raises(ValueError, match="Received: feature_layer='nope'"):
        transfer.get_backbone(model, feature_layer="nope")
    with pytest.raises(ValueError, match="Received: boundaries="):
        transfer.get_backbone(model, blocks=["nope"])


def test_resnet50_blocks_are_its_stages():
    backbone = transfer.get_backbone("resnet50", input_shape=(32, 32, 3),
                                     weights=None)
    assert [b.output for b in backbone.blocks] == [
        "conv1_relu", "conv2_block3_out", "conv3_block4_out",
        "conv4_block6_out", "conv5_block3_out"]
    assert backbone.block(-1).name == "block5"
    with pytest.raises(ValueError, match="Received: block=9"):
        backbone.block(9)


# One architecture of each family (the block rules are per family: the
# members share their layer naming) in the default run; every one of the 40
# with KERASCNN_TEST_ALL_BACKBONES=1 (about 4 minutes more on an idle 2-core
# machine: the large variants dominate).
FAMILY_REPRESENTATIVES = (
    "convnexttiny", "densenet121", "efficientnetb0", "efficientnetv2b0",
    "inceptionresnetv2", "inceptionv3", "mobilenet", "mobilenetv2",
    "mobilenetv3small", "nasnetmobile", "resnet50", "resnet50v2", "vgg16",
    "vgg19", "xception")
_ALL_BACKBONES = os.environ.get("KERASCNN_TEST_ALL_BACKBONES") == "1"


def _family(name):
    """The keras.applications module that builds `name` (one naming)."""
    return getattr(keras.applications,
                   transfer.get_spec(name).constructor).__module__


def test_family_representatives_cover_every_family():
    families = {_family(n) for n in registry.list_backbones()}
    covered = [_family(n) for n in FAMILY_REPRESENTATIVES]
    assert set(covered) == families and len(covered) == len(families)


@pytest.mark.slow
@pytest.mark.parametrize("name", registry.list_backbones() if _ALL_BACKBONES
                         else FAMILY_REPRESENTATIVES)
def test_every_backbone_builds_freezes_and_round_trips(name, tmp_path):
    spec = transfer.get_spec(name)
    size = spec.min_size
    start = time.perf_counter()
    backbone = transfer.get_backbone(name, input_shape=(size, size, 3),
                                     weights=None)
    blocks = backbone.blocks
    assert len(blocks) >= 3, [b.output for b in blocks]
    all_layers = [layer.name for layer in backbone.base.layers[1:]]
    assert [n for b in blocks for n in b.layers] == all_layers
    assert transfer.freeze_backbone(backbone) == []
    assert backbone.base.trainable_weights == []
    assert transfer.set_trainable_blocks(backbone, 2) == [
        blocks[-2].name, blocks[-1].name]
    assert transfer.trainable_blocks(backbone) == [blocks[-2].name,
                                                   blocks[-1].name]
    assert all(not bn.trainable for bn in
               transfer.batchnorm_layers(backbone.base))
    transfer.unfreeze_backbone(backbone)
    assert transfer.trainable_blocks(backbone)[-1] == blocks[-1].name
    assert len(transfer.trainable_blocks(backbone)) >= len(blocks) - 1
    # The preprocessing layer round-trips through a .keras file.
    inputs = keras.Input((size, size, 3))
    model = keras.Model(inputs, backbone.preprocessing(inputs))
    x = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3))
    model.save(tmp_path / "pre.keras")
    loaded = keras.saving.load_model(tmp_path / "pre.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6)
    print(f"{name}: {time.perf_counter() - start:.1f}s")
