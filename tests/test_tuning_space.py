"""Search space of kerascnn.tuning: conditioning, validation, hypermodel build."""

import itertools

import keras_tuner
import numpy as np
import pytest

from kerascnn import tuning
from kerascnn._validation import ArgumentError
from kerascnn.models import cnn_output_shapes
from kerascnn.tuning import CNNHyperModel, SearchSpace
from kerascnn.tuning.space import ConvConfig, decode_conv, encode_conv


def test_all_is_pinned():
    assert sorted(tuning.__all__) == sorted([
        "CNNHyperModel", "DEFAULT_SPACE", "GridSearchOracle", "OBJECTIVES",
        "SCHEDULES", "SearchResult", "SearchSpace", "SpaceReport", "TUNERS",
        "search"])
    assert tuning.TUNERS == ("hyperband", "bayesian", "random", "grid")


def _collapses(input_shape, depth, config):
    try:
        cnn_output_shapes(input_shape, depth=depth,
                          filter_size=config.filter_size,
                          stride=config.stride, padding=config.padding,
                          pooling=config.pooling)
    except ArgumentError:
        return True
    return False


@pytest.mark.parametrize("input_shape", [(28, 28, 1), (8, 8, 1)])
def test_conv_options_partition_every_combination(input_shape):
    space = SearchSpace()
    report = space.conv_options(input_shape)
    assert report.total == 3 * 3 * 2 * 4  # depths x F x S x P
    kept = excluded = 0
    for depth in space.depths:
        for f, s, p in itertools.product((3, 5, 7), (1, 2),
                                         ("same", "valid", 1, 2)):
            config = ConvConfig(f, s, p, "max2")
            if config in report.options[depth]:
                kept += 1
                assert not _collapses(input_shape, depth, config)
            else:
                excluded += 1
                assert _collapses(input_shape, depth, config)
    assert (kept, excluded) == (report.valid, report.excluded)
    assert report.valid + report.excluded == report.total


def test_conv_options_by_hand_at_28():
    report = SearchSpace().conv_options((28, 28, 1))
    # (28 - 3 + 0) / 2 + 1 = 13.5: a 3x3 valid stride-2 conv does not tile.
    assert ConvConfig(3, 2, "valid", "max2") not in report.options[1]
    # (28 - 5 + 2*2) / 2 + 1 = 14.5 does not tile, (28 - 7 + 2*2)/2 + 1 = 13.5
    assert ConvConfig(5, 2, 2, "max2") not in report.options[1]
    # (28 - 5 + 2*1) / 1 + 1 = 26, then 26 - 5 + 2 + 1 = 24, pool -> 12.
    assert ConvConfig(5, 1, 1, "max2") in report.options[1]
    assert (report.total, report.valid, report.excluded) == (72, 35, 37)
    assert [len(report.options[d]) for d in (1, 2, 3)] == [15, 14, 6]


def test_encode_decode_round_trip():
    for config in [ConvConfig(3, 1, "same", "max2"),
                   ConvConfig(7, 2, 2, None), ConvConfig(5, 1, "valid", "avg2")]:
        assert decode_conv(encode_conv(config, True)) == config
    assert encode_conv(ConvConfig(5, 2, 1, "max2"), False) == "5x5/s2/p1"
    assert decode_conv("5x5/s2/p1", "max3") == ConvConfig(5, 2, 1, "max3")


@pytest.mark.parametrize("name,value", [
    ("filter_sizes", ()), ("strides", []), ("paddings", ()),
    ("depths", ()), ("filters", ()), ("normalizations", ()),
    ("dropouts", ()), ("poolings", ())])
def test_empty_space_is_rejected(name, value):
    with pytest.raises(ValueError, match=f"Received: {name}="):
        SearchSpace(**{name: value})


@pytest.mark.parametrize("kwargs,match", [
    ({"filter_sizes": (3, 3)}, r"distinct .* Received: filter_sizes=\(3, 3\)"),
    ({"strides": (0,)}, r"Received: strides=\(0,\)"),
    ({"paddings": ("full",)}, r"Received: paddings=\('full',\)"),
    ({"normalizations": ("batchnorm",)}, "Received: normalizations="),
    ({"dropouts": (1.0,)}, r"Received: dropouts=\(1.0,\)"),
    ({"learning_rate": (1e-2, 1e-4)}, r"Received: learning_rate=\(0.01"),
    ({"learning_rate": -1.0}, "Received: learning_rate=-1.0"),
    ({"filter_sizes": 3}, "Received: filter_sizes=3"),
])
def test_bad_space_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SearchSpace(**kwargs)


def test_depth_no_combination_supports_is_rejected():
    # Explicit padding 2 around a 3x3 conv grows the map, so only "same" and
    # "valid": 8 -> 4 -> 2 -> 1 after three max2 blocks; a fourth pools 1x1.
    space = SearchSpace(depths=(1, 2, 4), paddings=("same", "valid"))
    with pytest.raises(ValueError, match=r"depth 4 collapses with every "
                       r"combination.*feasible depths here: \[1, 2\]\. "
                       r"Received: depths=\(1, 2, 4\)"):
        space.conv_options((8, 8, 1))
    with pytest.raises(ValueError, match=r"Received: depths=\(1, 2, 4\)"):
        CNNHyperModel((8, 8, 1), 10, space=space)


def test_space_from_config_and_unknown_key():
    space = SearchSpace.from_config({"depths": [2], "filter_sizes": [3, 5]})
    assert space.depths == (2,) and space.filter_sizes == (3, 5)
    assert SearchSpace.from_config(space.get_config()).get_config() == \
        space.get_config()
    with pytest.raises(ValueError, match="Received: space="):
        SearchSpace.from_config({"kernel": [3]})


def test_hypermodel_builds_defaults_with_he_and_numbers():
    hypermodel = CNNHyperModel((8, 8, 1), 10,
                               space={"depths": (2,), "filters": (4,)})
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    # Defaults: first value of every list, learning rate at its minimum.
    assert hp.values == {"depth": 2, "conv_depth2": "3x3/s1/same",
                         "filters": 4, "normalization": "batch",
                         "dropout": 0.0, "learning_rate": 1e-4}
    assert model.get_layer("block2_conv1").filters == 8
    assert model.get_layer("block1_conv1").kernel_size == (3, 3)
    assert model.optimizer.learning_rate.numpy() == pytest.approx(1e-4)
    assert model.output_shape == (None, 10)
    # Short trials: BatchNorm statistics settle with momentum 0.9.
    assert model.get_layer("block1_norm1").momentum == 0.9
    assert model.get_layer("block1_norm1").get_config()["momentum"] == 0.9


def test_random_oracle_never_draws_a_collapsing_stack(tmp_path):
    hypermodel = CNNHyperModel((8, 8, 1), 10, space={"filters": (4,)},
                               dense_units=8)
    tuner = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy",
                                     max_trials=1, directory=tmp_path, seed=3)
    depths = set()
    for _ in range(150):
        values = tuner.oracle._random_values()
        args = hypermodel.decode(values)
        depths.add(args["depth"])
        cnn_output_shapes((8, 8, 1), depth=args["depth"],
                          filter_size=args["filter_size"],
                          stride=args["stride"], padding=args["padding"],
                          pooling=args["pooling"])
    assert depths == {1, 2, 3}


def test_grid_enumerates_exactly_the_valid_configurations(tmp_path):
    space = {"depths": (1, 2), "filter_sizes": (3, 5), "strides": (1, 2),
             "paddings": ("same", "valid"), "filters": (4,),
             "normalizations": ("none",), "dropouts": (0.0,),
             "learning_rate": 1e-3}
    hypermodel = CNNHyperModel((8, 8, 1), 10, space=space, dense_units=8)
    oracle = tuning.GridSearchOracle(objective="val_accuracy")
    keras_tuner.Tuner(oracle=oracle, hypermodel=hypermodel,
                      directory=tmp_path, project_name="grid")
    values = {hp.name: hp.default for hp in oracle.get_space().space
              if oracle.get_space().is_active(hp)}
    seen = [values]
    while True:
        values = oracle._get_next_combination(values)
        if values is None:
            break
        seen.append(values)
    report = hypermodel.report
    # 8x8, two convs per block: depth 1 keeps 3x3/s1 same+valid (8-3+1=6,
    # 6-3+1=4), 3x3/s2/same, 5x5/s1/same, 5x5/s2/same (5x5 valid: 8-5+1=4,
    # 4-5+1=0 collapses); depth 2 only the stride-1 "same" stacks.
    assert (report.valid, report.excluded) == (7, 9)
    assert len(seen) == report.valid
    decoded = {tuple(sorted(hypermodel.decode(v).items())) for v in seen}
    assert len(decoded) == report.valid


def test_hypermodel_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"Received: input_shape=\(8, 8\)"):
        CNNHyperModel((8, 8), 10)
    with pytest.raises(ValueError, match="Received: num_classes=1"):
        CNNHyperModel((8, 8, 1), 1)
    with pytest.raises(ValueError, match="Received: schedule='cosine'"):
        CNNHyperModel((8, 8, 1), 10, schedule="cosine")
    with pytest.raises(ValueError, match="Received: steps_per_epoch=None"):
        CNNHyperModel((8, 8, 1), 10, schedule="cyclic")
    with pytest.raises(ValueError, match=r"Received: class_weight=\{12: 1.0\}"):
        CNNHyperModel((8, 8, 1), 10, class_weight={12: 1.0})
    with pytest.raises(ValueError, match="Received: normalizer="):
        CNNHyperModel((8, 8, 1), 10, normalizer=np.zeros((3, 9, 9, 1)))


def test_cyclical_schedule_bounds():
    hypermodel = CNNHyperModel((8, 8, 1), 10, schedule="cyclic",
                               steps_per_epoch=5)
    schedule = hypermodel.learning_rate(4e-3)
    # Starts at lr / 4, peaks at lr after 2 epochs = 10 steps.
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(10)) == pytest.approx(4e-3)
    assert float(schedule(5)) == pytest.approx(2.5e-3)
