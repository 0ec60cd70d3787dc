"""Weight analysis straight from a model file: no TensorFlow, no Keras, one layer in memory.

:func:`open_stored` reads a ``.keras`` archive, a legacy ``.h5`` file or a Keras 3 ``.weights.h5``
beside its configuration with ``zipfile``, ``json`` and ``h5py`` alone, after the same up-front
checks as :func:`weightkit.analysis.load_model` (size limits, declared sizes). The :class:`StoredModel` it
returns lists the layers from the configuration and reads each layer's arrays when asked; nothing
in the file is deserialized, so no code stored in it can run. :func:`weightkit.analysis.analyze` and
:func:`weightkit.analysis.model_analysis.analyze_model` accept it in place of a ``keras.Model`` and give the
same result.
"""

from weightkit.analysis.files.stored.entries import iter_stored_rows, plan_entries
from weightkit.analysis.files.stored.layout import StoredLayer, model_layers
from weightkit.analysis.files.stored.model import StoredModel, open_stored

__all__ = ["StoredLayer", "StoredModel", "iter_stored_rows", "model_layers", "open_stored", "plan_entries"]
