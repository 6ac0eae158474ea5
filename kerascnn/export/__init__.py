"""Export: verified, atomic SavedModel export and loading for inference.

`export_model` writes `directory/name/{saved_model/, model.keras,
metadata.json}` through a temporary folder, verifies both reloads against the
in-memory model and renames the folder into place; `load_export` and
`predict_export` serve it.
"""

from kerascnn.export.saved_model import ExportedModel
from kerascnn.export.saved_model import export_model
from kerascnn.export.saved_model import load_export
from kerascnn.export.saved_model import predict_export

__all__ = ["export_model", "load_export", "predict_export", "ExportedModel"]
