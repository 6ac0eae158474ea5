"""Export: verified, atomic SavedModel export and loading for inference.

`export_model` writes `directory/name/{saved_model/, model.keras,
metadata.json}` through a temporary folder, verifies both reloads against the
in-memory model and renames the folder into place; `load_export` and
`predict_export` serve it. Only a folder marked as a kerascnn export is ever
replaced (`kerascnn.export.safety`); an export killed between its renames is
restored on the next call; `check_writable` and `save_fallback` let
workflows check their output folders before training and keep a trained
model when its export fails (`export_or_fallback`).
"""

from kerascnn.export.safety import ExportFailedError
from kerascnn.export.safety import NotAnExportError
from kerascnn.export.safety import check_writable
from kerascnn.export.safety import is_export
from kerascnn.export.safety import save_fallback
from kerascnn.export.saved_model import ExportedModel
from kerascnn.export.saved_model import check_export_target
from kerascnn.export.saved_model import export_model
from kerascnn.export.saved_model import export_or_fallback
from kerascnn.export.saved_model import load_export
from kerascnn.export.saved_model import predict_export

__all__ = [
    "export_model", "load_export", "predict_export", "ExportedModel",
    "check_export_target", "check_writable", "export_or_fallback",
    "save_fallback", "is_export", "ExportFailedError", "NotAnExportError",
]
