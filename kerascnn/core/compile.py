"""Compile for every workflow: one loss, one metric list, one set of switches."""

import keras

LOSS = "sparse_categorical_crossentropy"
METRICS = ("accuracy",)


def compile_classifier(model, optimizer="adam", learning_rate=1e-3, *,
                       jit_compile="auto", steps_per_execution=1):
    """Compiles `model` for integer-label classification; returns it.

    Args:
        model: A `keras.Model` with a softmax output.
        optimizer: An optimizer name or a `keras.optimizers.Optimizer`
            (used as given). Defaults to `"adam"`.
        learning_rate: Float or schedule, used when `optimizer` is a name.
            Defaults to `1e-3`.
        jit_compile: `"auto"`, `True` or `False` (Keras' `compile`
            argument). Defaults to `"auto"`.
        steps_per_execution: Integer >= 1. Defaults to `1`.
    """
    if isinstance(optimizer, str):
        optimizer = keras.optimizers.get(
            {"class_name": optimizer, "config": {"learning_rate": learning_rate}})
    model.compile(optimizer=optimizer, loss=LOSS, metrics=list(METRICS),
                  jit_compile=jit_compile,
                  steps_per_execution=steps_per_execution)
    return model
