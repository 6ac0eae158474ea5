"""Blocks (stages) of a backbone, and freezing / unfreezing by block.

A block is a run of consecutive layers (in the model's topological order)
that ends where the feature map's resolution drops, at a layer whose output
is the only tensor the rest of the network needs (the stage output). This
is how ResNet's ``conv2..conv5`` stages, MobileNet's or EfficientNet's
stride-2 stages, Inception's ``mixed`` groups or a small CNN's
conv-conv-pool groups are found without a table of layer names, for any
Keras functional model; boundaries can also be given explicitly.
"""

import collections

import keras

from kerascnn import _compat, _validation

Block = collections.namedtuple(
    "Block", ["index", "name", "layers", "output", "resolution"])
Block.__doc__ = """One block of a backbone.

Fields:
    index: 0 for the lowest (input side) block.
    name: `"block1"`, `"block2"`, ...
    layers: Tuple of the names of the block's layers, in order.
    output: Name of the layer whose output is the block's output.
    resolution: `(height, width)` of that output, or `None` for a flat
        (non-spatial) output.
"""

_BN_TYPES = (keras.layers.BatchNormalization,)


def _layers(model):
    return [layer for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer)]


def _has_weights(layer):
    # Input rescaling/normalisation holds statistics, not learned weights.
    if isinstance(layer, (keras.layers.Normalization, keras.layers.Rescaling)):
        return False
    return bool(layer.weights)


def _output_shape(layer):
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(output, (list, tuple)):
        output = output[0]
    return tuple(output.shape)


def _input_shape(layer):
    try:
        inputs = layer.input
    except (AttributeError, ValueError):
        return None
    if isinstance(inputs, (list, tuple)):
        inputs = inputs[0]
    return tuple(inputs.shape)


def _area(shape):
    if shape is None or len(shape) != 4 or None in shape[1:3]:
        return 0
    return shape[1] * shape[2]


def _producers(layer, known):
    """Names of the layers in `known` whose outputs `layer` consumes."""
    names = set()
    for node in _compat.inbound_nodes(layer):
        for tensor in getattr(node, "input_tensors", []) or []:
            history = _compat.keras_history(tensor)
            if history is None:
                continue
            producer = history[0]
            if getattr(producer, "name", None) in known:
                names.add(producer.name)
    return names


def find_blocks(model, boundaries=None):
    """Splits a functional model's layers into blocks (stages).

    Args:
        model: A built Keras functional (or Sequential) model.
        boundaries: Optional list of layer names, each the last layer of a
            block, in order; the layers after the last boundary form a final
            block. By default boundaries are found where the resolution
            drops, at the last layer of each resolution that the rest of the
            network depends on alone.

    Returns:
        A tuple of `Block`, lowest first.
    """
    layers = _layers(model)
    if not layers:
        _validation.fail("model", "a model with layers", model)
    names = [layer.name for layer in layers]
    position = {name: i for i, name in enumerate(names)}
    if boundaries is not None:
        if isinstance(boundaries, str) or not isinstance(
                boundaries, (list, tuple)) or not boundaries:
            _validation.fail("boundaries", "a non-empty list of layer names",
                             boundaries)
        unknown = [b for b in boundaries if b not in position]
        if unknown:
            _validation.fail(
                "boundaries", f"names of layers of model {model.name!r}",
                boundaries)
        ends = sorted({position[b] for b in boundaries})
    else:
        ends = _derive_ends(layers, position)
    if not ends or ends[-1] != len(layers) - 1:
        ends.append(len(layers) - 1)
    # A block without weights (padding, pooling) joins the next one.
    groups, start = [], 0
    for end in ends:
        groups.append((start, end))
        start = end + 1
    merged = []
    pending = None
    for start, end in groups:
        if pending is not None:
            start = pending
            pending = None
        has_weights = any(_has_weights(layers[i])
                          for i in range(start, end + 1))
        if not has_weights and end != len(layers) - 1:
            pending = start
            continue
        merged.append((start, end))
    if pending is not None or (len(merged) > 1 and not any(
            _has_weights(layers[i]) for i in range(merged[-1][0],
                                             merged[-1][1] + 1))):
        last_start = pending if pending is not None else merged[-1][0]
        if pending is None:
            merged.pop()
        if merged:
            merged[-1] = (merged[-1][0], len(layers) - 1)
        else:
            merged.append((last_start, len(layers) - 1))
    blocks = []
    for index, (start, end) in enumerate(merged):
        shape = _output_shape(layers[end])
        resolution = (tuple(shape[1:3]) if shape is not None
                      and len(shape) == 4 else None)
        blocks.append(Block(index, f"block{index + 1}",
                            tuple(names[start:end + 1]), names[end],
                            resolution))
    return tuple(blocks)


def _derive_ends(layers, position):
    known = set(position)
    areas, padding = [], []
    for layer in layers:
        area = _area(_output_shape(layer))
        in_area = _area(_input_shape(layer))
        # Padding belongs to its input's stage and never ends one.
        padding.append(area > in_area > 0)
        areas.append(in_area if padding[-1] else area)
    last_use = [i for i in range(len(layers))]
    for k, layer in enumerate(layers):
        for name in _producers(layer, known):
            j = position[name]
            last_use[j] = max(last_use[j], k)
    cut, running = [], -1  # cut[i]: no layer before i is needed after i
    for i in range(len(layers)):
        cut.append(running <= i)
        running = max(running, last_use[i])
    cut = [c and not p for c, p in zip(cut, padding)]
    resolutions = sorted({a for a in areas if a > 0}, reverse=True)
    # A stage ends where the area at least halves (a stride or a pool), not
    # where a "valid" convolution trims a border.
    resolutions = [a for a, b in zip(resolutions, resolutions[1:])
                   if a >= 2 * b] + resolutions[-1:]
    ends, previous = [], -1
    for area in resolutions[:-1] if resolutions else []:
        last = max(i for i, a in enumerate(areas) if a >= area)
        candidates = [i for i in range(previous + 1, last + 1)
                      if cut[i] and areas[i] == area]
        end = candidates[-1] if candidates else last
        if end > previous:
            ends.append(end)
            previous = end
    if resolutions:
        # The last spatial stage ends at its last cut; flat layers follow.
        last = max(i for i, a in enumerate(areas) if a > 0)
        flat_after = any(a == 0 for a in areas[last + 1:])
        if flat_after and last > previous:
            candidates = [i for i in range(previous + 1, last + 1) if cut[i]]
            ends.append(candidates[-1] if candidates else last)
    return ends


def _iter_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _iter_layers(layer)


def _model_and_blocks(backbone):
    model = getattr(backbone, "base", None)
    blocks = getattr(backbone, "blocks", None)
    if model is None or blocks is None:
        _validation.fail("backbone", "a kerascnn.transfer.Backbone", backbone)
    return model, blocks


def set_trainable_blocks(backbone, num_blocks, train_batchnorm=False):
    """Freezes a backbone except its top `num_blocks` blocks.

    BatchNormalization layers stay frozen, which in Keras 3 also keeps them
    in inference mode (they normalise with their moving statistics and do
    not update them), the rule of the Keras transfer-learning guide; pass
    `train_batchnorm=True` to fine-tune them too.

    What it adds to Keras: freezing is said in blocks (stages), not layer
    indices, and the BatchNormalization rule is applied for you.

    Args:
        backbone: A `Backbone` from `get_backbone`.
        num_blocks: Integer in [0, number of blocks], or `"all"`. `0`
            freezes the whole backbone.
        train_batchnorm: Boolean. Defaults to `False`.

    Returns:
        The list of the names of the trainable blocks.
    """
    model, blocks = _model_and_blocks(backbone)
    if num_blocks == "all":
        num_blocks = len(blocks)
    num_blocks = _validation.check_int("num_blocks", num_blocks, 0,
                                       len(blocks))
    train_batchnorm = _validation.check_bool("train_batchnorm",
                                             train_batchnorm)
    model.trainable = True
    for layer in _iter_layers(model):
        layer.trainable = False
    trainable = blocks[len(blocks) - num_blocks:] if num_blocks else ()
    names = {name for block in trainable for name in block.layers}
    for layer in model.layers:
        if layer.name not in names:
            continue
        layer.trainable = True
        for inner in ([layer] + list(_iter_layers(layer))
                      if isinstance(layer, keras.Model) else [layer]):
            if isinstance(inner, _BN_TYPES) and not train_batchnorm:
                inner.trainable = False
    if num_blocks == 0:
        model.trainable = False
    return [block.name for block in trainable]


def freeze_backbone(backbone):
    """Freezes every block of `backbone` (`set_trainable_blocks(b, 0)`)."""
    return set_trainable_blocks(backbone, 0)


def unfreeze_backbone(backbone, train_batchnorm=False):
    """Unfreezes every block; BatchNormalization stays frozen by default."""
    return set_trainable_blocks(backbone, "all", train_batchnorm)


def trainable_blocks(backbone):
    """Names of the blocks that hold at least one trainable weight."""
    model, blocks = _model_and_blocks(backbone)
    result = []
    for block in blocks:
        layers = [model.get_layer(name) for name in block.layers]
        if any(layer.trainable_weights for layer in layers):
            result.append(block.name)
    return result


def batchnorm_layers(model):
    """All BatchNormalization layers of `model`, nested models included."""
    return [layer for layer in _iter_layers(model)
            if isinstance(layer, _BN_TYPES)]
