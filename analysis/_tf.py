"""Import TensorFlow and Keras quietly, once, only where a command needs them.

Importing TensorFlow takes about 6 s and writes C++ log lines to stderr even with
``TF_CPP_MIN_LOG_LEVEL=3``. We set that level (unless the user chose one) and point file
descriptor 2 at ``/dev/null`` around the import only, so a user's terminal shows our output.
"""

import contextlib
import os
import sys

__all__ = ["import_keras", "import_tensorflow", "recreating_loaded_layers", "silenced_stderr", "silenced_stdout"]


@contextlib.contextmanager
def silenced_stderr():
    """Send file descriptor 2 (C++ logs included) to /dev/null inside the block."""
    yield from _silenced_fd(2, sys.stderr)


@contextlib.contextmanager
def silenced_stdout():
    """Send file descriptor 1 (the converter's ``Saved artifact at`` lines) to /dev/null."""
    yield from _silenced_fd(1, sys.stdout)


def _silenced_fd(fd, stream):
    try:
        stream.flush()
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):  # no real descriptor (a captured stream)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def import_tensorflow():
    """Return the ``tensorflow`` module, imported with its start-up noise hidden."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with silenced_stderr():
        import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    return tf


def import_keras():
    """Return the ``keras`` module (Keras 3 on the TensorFlow backend)."""
    import_tensorflow()
    import keras

    return keras


@contextlib.contextmanager
def recreating_loaded_layers():
    """Keras' safe mode lifted, for this block only, while layers of a model already in this process are re-created.

    A rebuild (``layer.__class__.from_config(layer.get_config())``) reads no file: every layer it re-creates
    exists already, so it was admitted by the load (a TFSMLayer or a Lambda only with ``safe_mode=False``,
    ``--unsafe``) or built by the caller. Keras' ``TFSMLayer.from_config`` and ``Lambda.from_config`` still
    consult the global safe-mode flag; this sets it (Keras' ``SafeModeScope``) and restores it on exit, where
    ``keras.config.enable_unsafe_deserialization()`` would leave it off for the whole process.
    """
    import_keras()
    from keras.src.saving import serialization_lib

    with serialization_lib.SafeModeScope(False):
        yield
