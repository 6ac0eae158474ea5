"""The training core that `fit`, `transfer.fit` and `tuning.search` share.

Each workflow is a short recipe that makes its own decisions (the CNN and its
defaults, the transfer table's plan, the search space) and hands the plumbing
to the modules here:

- `kerascnn.data.sources`: every kind of input (arrays, a class folder, a
  `tf.data.Dataset`, a `keras.utils.PyDataset`) resolved once into
  `ImageSource` splits that stream.
- `kerascnn.core.distribute`: the distribution strategy (one meaning of
  `None` and `"auto"`, `TF_CONFIG` multi-worker), chief-only writing,
  precision and XLA.
- the rest of this package: typed settings, compile, the standard callbacks
  (early stopping, backup/resume, TensorBoard, loss-curve diagnosis),
  evaluation and the result dataclasses.
"""
