"""The standard callbacks every workflow trains with, made in one place."""


def early_stopping(patience, monitor="val_loss", restore_best_weights=True,
                   verbose=0):
    """kerascnn's `EarlyStopping` (NaN stop, `stop_reason`), best restored."""
    from kerascnn.callbacks import EarlyStopping

    return EarlyStopping(monitor=monitor, patience=patience,
                         restore_best_weights=restore_best_weights,
                         verbose=verbose)
