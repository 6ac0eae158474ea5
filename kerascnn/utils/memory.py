"""Training-memory estimate of a Keras model (parameters, gradients, optimizer
slots, activations, input batch)."""

import dataclasses
import math

import keras

from kerascnn import _compat, _validation

# Per-parameter optimizer state, in copies of the trainable weights.
OPTIMIZER_SLOTS = {
    "sgd": 0,
    "momentum": 1,
    "sgd_momentum": 1,
    "nesterov": 1,
    "rmsprop": 1,
    "adagrad": 1,
    "lion": 1,
    "adam": 2,
    "adamw": 2,
    "nadam": 2,
    "adamax": 2,
    "adadelta": 2,
    "ftrl": 2,
    "lamb": 2,
    "amsgrad": 3,
}


def _slots_of_instance(optimizer):
    o = keras.optimizers
    if isinstance(optimizer, o.SGD):
        slots = 1 if float(optimizer.momentum) > 0 else 0
    elif isinstance(optimizer, o.RMSprop):
        slots = 1 + (float(optimizer.momentum) > 0) + bool(optimizer.centered)
    elif isinstance(optimizer, (o.Adam, o.AdamW)):
        slots = 2 + bool(optimizer.amsgrad)
    elif isinstance(optimizer, (o.Nadam, o.Adamax, o.Adadelta, o.Ftrl,
                                o.Lamb)):
        slots = 2
    elif isinstance(optimizer, (o.Adagrad, o.Lion)):
        slots = 1
    else:
        _validation.fail(
            "optimizer",
            "one of " + ", ".join(repr(k) for k in OPTIMIZER_SLOTS)
            + " or an SGD, RMSprop, Adam, AdamW, Nadam, Adamax, Adadelta, "
            "Ftrl, Lamb, Adagrad or Lion instance",
            optimizer,
        )
    if getattr(optimizer, "use_ema", False):
        slots += 1
    if getattr(optimizer, "gradient_accumulation_steps", None):
        slots += 1
    return int(slots), type(optimizer).__name__


def _graph_of(model):
    graph = _compat.functional_graph(model)
    if not _compat.has_node_graph(graph):
        _validation.fail(
            "model",
            "a built functional or Sequential model with a known input shape "
            "(subclassed models hide their layer outputs)",
            getattr(model, "name", model),
        )
    return graph


def _elements(shape, where):
    dims = list(shape)[1:]
    if any(d is None for d in dims):
        raise _validation.ArgumentError(
            "Argument `model` must have fully known shapes after the batch "
            f"axis. Received: {where} with shape {tuple(shape)}"
        )
    return math.prod(dims)


def _walk(model, per_layer):
    """Adds (name, elements per sample) for every node's outputs."""
    graph = _graph_of(model)
    nodes = _compat.nodes_by_depth(graph)
    for depth in sorted(nodes, reverse=True):
        for node in nodes[depth]:
            operation = node.operation
            if isinstance(operation, keras.layers.InputLayer):
                continue
            if isinstance(operation, keras.Model) and (
                isinstance(operation, keras.Sequential)
                or _compat.has_node_graph(operation)
            ):
                _walk(operation, per_layer)  # its last layer's output counts
                continue
            count = sum(_elements(out.shape, f"layer {operation.name!r}")
                        for out in node.outputs)
            per_layer.append((operation.name, count))


def _human(num_bytes):
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else \
                f"{value:.2f} {unit}"
        value /= 1024


@dataclasses.dataclass
class MemoryEstimate:
    """Bytes needed to train one batch, by part.

    Attributes:
        parameters: All weights (trainable and not), in bytes.
        gradients: One gradient per trainable weight, in bytes.
        optimizer_slots: Optimizer state, `slots_per_parameter` copies of the
            trainable weights, in bytes.
        activations: Every layer output for the whole batch, kept from the
            forward pass for the backward pass, in bytes.
        inputs: The input batch, in bytes.
        batch_size, dtype_bytes, optimizer, slots_per_parameter,
        num_parameters, num_trainable_parameters, activation_elements (per
        sample), largest_layers (up to 5 `(name, bytes)` for the batch).
    """

    parameters: int
    gradients: int
    optimizer_slots: int
    activations: int
    inputs: int
    batch_size: int
    dtype_bytes: int
    optimizer: str
    slots_per_parameter: int
    num_parameters: int
    num_trainable_parameters: int
    activation_elements: int
    largest_layers: list

    @property
    def total(self):
        """The sum of all parts, in bytes."""
        return (self.parameters + self.gradients + self.optimizer_slots
                + self.activations + self.inputs)

    def to_dict(self):
        data = dataclasses.asdict(self)
        data["total"] = self.total
        return data

    def summary(self):
        """Human-readable breakdown."""
        rows = [
            ("parameters", self.parameters,
             f"{self.num_parameters:,} weights x {self.dtype_bytes} B"),
            ("gradients", self.gradients,
             f"{self.num_trainable_parameters:,} trainable"),
            ("optimizer slots", self.optimizer_slots,
             f"{self.optimizer}: {self.slots_per_parameter} per weight"),
            ("activations", self.activations,
             f"{self.activation_elements:,} values/sample x batch "
             f"{self.batch_size}"),
            ("input batch", self.inputs, f"batch {self.batch_size}"),
        ]
        lines = [f"Estimated training memory: {_human(self.total)}"]
        for name, size, note in rows:
            lines.append(f"  {name:<16}{_human(size):>12}  ({note})")
        if self.largest_layers:
            lines.append("  largest activations: " + ", ".join(
                f"{name} {_human(size)}" for name, size in self.largest_layers))
        lines.append("  Not counted: framework workspace (cuDNN/oneDNN), "
                     "fused-op temporaries, allocator fragmentation, labels.")
        return "\n".join(lines)


def estimate_memory(model, batch_size, optimizer="adam", dtype_bytes=4):
    """Estimates the memory needed to train `model` on one batch.

    The lecture's rule ("the memory requirements of parameters, activations,
    and batch data must be considered"), made exact for what it counts.
    Keras' `model.summary()` gives parameter counts only; this adds
    gradients, optimizer slots (Adam 2 per weight, SGD with momentum 1, plain
    SGD 0, RMSprop 1, AMSGrad 3, ...), the activations of every layer output
    for the batch (all kept for the backward pass), and the input batch.

    The parts are exact counts of the tensors they name (the tests check
    them against the tensors TensorFlow actually creates); the total is a
    lower bound of what an accelerator needs: not counted are framework
    workspace (cuDNN/oneDNN scratch), temporaries of fused ops, the
    backward pass's transient activation gradients, allocator fragmentation,
    the labels and scalar optimizer state. Expect the real peak 10-50%
    higher, more for convolution-heavy models.

    Args:
        model: A built functional or Sequential Keras model with known
            shapes after the batch axis.
        batch_size: Positive integer.
        optimizer: A name in `OPTIMIZER_SLOTS` ("adam", "sgd", "momentum",
            "rmsprop", ...) or a Keras optimizer instance (its momentum,
            `amsgrad`, `centered`, EMA and gradient accumulation are read).
            Defaults to `"adam"`.
        dtype_bytes: Positive integer, bytes per value (4 for float32, 2 for
            float16/bfloat16). Defaults to `4`.

    Returns:
        A `MemoryEstimate`; `.total` in bytes, `.summary()` as text.
    """
    if not isinstance(model, keras.Model):
        _validation.fail("model", "a Keras model", type(model).__name__)
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    dtype_bytes = _validation.check_positive_int("dtype_bytes", dtype_bytes)
    if isinstance(optimizer, keras.optimizers.Optimizer):
        slots, optimizer_name = _slots_of_instance(optimizer)
    else:
        optimizer_name = _validation.check_option(
            "optimizer", optimizer, tuple(OPTIMIZER_SLOTS))
        slots = OPTIMIZER_SLOTS[optimizer_name]
    per_layer = []
    _walk(model, per_layer)
    graph = _graph_of(model)
    input_elements = sum(_elements(t.shape, "input") for t in graph.inputs)
    trainable = sum(math.prod(v.shape) for v in model.trainable_weights)
    total_params = sum(math.prod(v.shape) for v in model.weights)
    activation_elements = sum(count for _, count in per_layer)
    unit = batch_size * dtype_bytes
    largest = sorted(per_layer, key=lambda item: -item[1])[:5]
    return MemoryEstimate(
        parameters=total_params * dtype_bytes,
        gradients=trainable * dtype_bytes,
        optimizer_slots=slots * trainable * dtype_bytes,
        activations=activation_elements * unit,
        inputs=input_elements * unit,
        batch_size=batch_size,
        dtype_bytes=dtype_bytes,
        optimizer=optimizer_name,
        slots_per_parameter=slots,
        num_parameters=total_params,
        num_trainable_parameters=trainable,
        activation_elements=activation_elements,
        largest_layers=[(name, count * unit) for name, count in largest],
    )
