"""One data loader for every command that takes ``--data``.

Accepted specifications:

- ``PATH.npz`` with ``x``, ``y`` (split here) or ``x_train``, ``y_train``, ``x_test``, ``y_test``;
- ``PATH.csv`` with a header and a label column (``target``, default the last column);
- a folder of images in class subfolders (``keras.utils.image_dataset_from_directory``);
- ``sklearn:NAME`` for scikit-learn's bundled datasets: digits (pixels scaled to [0, 1]), iris,
  wine, breast_cancer, diabetes (regression). No download.

``np.load`` is always called with ``allow_pickle=False``.
"""

import os
import zipfile
from dataclasses import dataclass

import numpy as np

from analysis.errors import WeightkitError

__all__ = ["Dataset", "load_data", "SKLEARN_DATASETS"]

SKLEARN_DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass
class Dataset:
    """Training and held-out arrays.

    Attributes
    ----------
    x_train : ndarray of shape (n_train, ...)
    y_train : ndarray of shape (n_train,) or (n_train, k)
    x_test : ndarray of shape (n_test, ...)
    y_test : ndarray of shape (n_test,) or (n_test, k)
    source : str
        The specification it was loaded from.
    task : {"classification", "regression"}
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    task: str

    @property
    def n_classes(self):
        if self.task != "classification":
            return None
        y = np.concatenate([self.y_train, self.y_test])
        return int(y.shape[1]) if y.ndim == 2 else int(y.max()) + 1


def _split(x, y, source, task, test_fraction, seed):
    n = len(x)
    if n == 0:
        raise WeightkitError(f"{source}: the dataset is empty; give at least 2 samples.")
    if len(y) != n:
        raise WeightkitError(
            f"{source}: {n} inputs but {len(y)} labels; x and y must have the same length."
        )
    if n < 2:
        raise WeightkitError(f"{source}: only {n} sample; give at least 2 so a test split exists.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_test = min(n - 1, max(1, int(round(test_fraction * n))))
    test, train = order[:n_test], order[n_test:]
    return Dataset(x[train], y[train], x[test], y[test], source, task)


def _task_of(y):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1 and set(np.unique(y)).issubset({0, 1}):
        return "classification"
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return "classification"
    return "regression"


def _numeric(array, source, what):
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.number) and not np.issubdtype(array.dtype, np.bool_):
        raise WeightkitError(f"{source}: {what} has dtype {array.dtype}, expected numbers.")
    return array


def _load_sklearn(name, source, test_fraction, seed):
    from sklearn import datasets

    if name not in SKLEARN_DATASETS:
        raise WeightkitError(
            f"--data {source}: unknown bundled dataset {name!r}; expected one of "
            f"{', '.join('sklearn:' + n for n in SKLEARN_DATASETS)}."
        )
    bunch = getattr(datasets, f"load_{name}")()
    x = bunch.data.astype(np.float32)
    if name == "digits":
        x = x / 16.0
    y = bunch.target.astype(np.float32 if name == "diabetes" else np.int64)
    task = "regression" if name == "diabetes" else "classification"
    return _split(x, y, source, task, test_fraction, seed)


def _load_npz(path, test_fraction, seed):
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head != b"PK\x03\x04" and head != b"PK\x05\x06":  # np.savez writes a zip archive
        what = "is an empty file" if not head else "is not an .npz archive (unrecognized content)"
        raise WeightkitError(f"--data {path}: {what}; save the arrays with np.savez(path, x=..., y=...).")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:
        raise WeightkitError(
            f"{path}: holds Python objects (pickled arrays), which are not loaded for safety; "
            "save plain numeric arrays with np.savez."
        ) from error
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise WeightkitError(f"{path}: not a readable .npz file ({error}); save it with np.savez.") from error
    if {"x_train", "y_train", "x_test", "y_test"} <= arrays.keys():
        parts = [_numeric(arrays[k], path, k) for k in ("x_train", "y_train", "x_test", "y_test")]
        for x_key, y_key, x, y in (("x_train", "y_train", parts[0], parts[1]), ("x_test", "y_test", parts[2], parts[3])):
            if len(x) == 0:
                raise WeightkitError(f"{path}: {x_key} is empty; give at least one sample.")
            if len(x) != len(y):
                raise WeightkitError(f"{path}: {x_key} has {len(x)} samples but {y_key} has {len(y)}; they must match.")
        return Dataset(*parts, source=path, task=_task_of(parts[1]))
    if {"x", "y"} <= arrays.keys():
        x, y = _numeric(arrays["x"], path, "x"), _numeric(arrays["y"], path, "y")
        return _split(x, y, path, _task_of(y), test_fraction, seed)
    raise WeightkitError(
        f"{path}: has arrays {sorted(arrays)}, expected x and y (or x_train, y_train, x_test, y_test)."
    )


def _load_csv(path, target, test_fraction, seed):
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise WeightkitError(f"{path}: cannot be read as UTF-8 CSV ({error}).") from error
    numbered = [(line, row) for line, row in enumerate(rows, start=1) if row]
    if len(numbered) < 2:
        raise WeightkitError(f"{path}: no data rows; expected a header line and at least one row.")
    header, body = numbered[0][1], numbered[1:]
    column = len(header) - 1
    if target is not None:
        if target not in header:
            raise WeightkitError(f"{path}: no column named {target!r} for --target; columns: {', '.join(header)}.")
        column = header.index(target)
    values = np.empty((len(body), len(header)), dtype=np.float64)
    for index, (line, row) in enumerate(body):
        if len(row) != len(header):
            raise WeightkitError(
                f"{path}: line {line} has {len(row)} fields, the header has {len(header)}; give every "
                "row one value per column."
            )
        for field, text in enumerate(row):
            try:
                values[index, field] = float(text)
            except ValueError:
                raise WeightkitError(
                    f"{path}: line {line}, column {header[field]!r}: {text!r} is not a number; "
                    "encode text columns as numbers first."
                ) from None
    y = values[:, column]
    x = np.delete(values, column, axis=1).astype(np.float32)
    if np.all(np.isfinite(y)) and np.all(y == np.round(y)):  # Inf would cast to a garbage integer
        y = y.astype(np.int64)
    else:
        y = y.astype(np.float32)
    return _split(x, y, path, _task_of(y), test_fraction, seed)


_COLOR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}


def _load_image_folder(path, image_size, test_fraction, seed, channels=3):
    classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    images = [f for c in classes for f in os.listdir(os.path.join(path, c)) if f.lower().endswith(_IMAGE_SUFFIXES)]
    if not classes or not images:
        raise WeightkitError(
            f"{path}: no images in class subfolders (expected {path}/CLASS/IMAGE.png); check the folder."
        )
    from analysis._tf import import_keras, silenced_stderr

    keras = import_keras()
    try:
        with silenced_stderr():
            dataset = keras.utils.image_dataset_from_directory(
                path, image_size=image_size, batch_size=None, shuffle=False, label_mode="int",
                color_mode=_COLOR_MODES.get(channels, "rgb"), verbose=False)
            xs, ys = [], []
            for x, y in dataset:
                xs.append(np.asarray(x))
                ys.append(int(y))
    except Exception as error:  # noqa: BLE001 - decoding failures come from TensorFlow
        culprit = _undecodable_image(path, classes)
        what = f"image {culprit} could not be decoded" if culprit else \
            f"an image could not be decoded ({' '.join(str(error).split())[:160]})"
        raise WeightkitError(f"{path}: {what}; remove or replace corrupt images.") from error
    x = np.stack(xs).astype(np.float32)
    y = np.asarray(ys, dtype=np.int64)
    return _split(x, y, path, "classification", test_fraction, seed)


def _undecodable_image(path, classes):
    """The first image under ``path`` TensorFlow cannot decode (only called after a failure), or None."""
    import tensorflow as tf

    for name in classes:
        folder = os.path.join(path, name)
        for file in sorted(os.listdir(folder)):
            if file.lower().endswith(_IMAGE_SUFFIXES):
                try:
                    tf.io.decode_image(tf.io.read_file(os.path.join(folder, file)), expand_animations=False)
                except Exception:  # noqa: BLE001 - any decoding failure names the file
                    return os.path.join(folder, file)
    return None


def load_data(spec, *, target=None, image_size=(256, 256), test_fraction=0.2, seed=0, channels=3):
    """Load a dataset from a ``--data`` specification.

    Parameters
    ----------
    spec : str
        ``PATH.npz``, ``PATH.csv``, an image folder, or ``sklearn:NAME``.
    target : str, default=None
        CSV label column (default: the last column).
    image_size : tuple of int, default=(256, 256)
        Size images are resized to; pass the model's input size.
    test_fraction : float, default=0.2
        Held-out share when the source has no test split (seeded, shuffled).
    seed : int, default=0
    channels : {1, 3, 4}, default=3
        Color channels images are decoded to (grayscale, RGB, RGBA).

    Returns
    -------
    Dataset

    Raises
    ------
    WeightkitError
        A missing, unreadable, empty, malformed or unsupported source, in one line.

    See Also
    --------
    load_data_for_model : load, fit and check against a model in one call.
    """
    spec = os.fspath(spec)
    if spec.startswith("sklearn:"):
        return _load_sklearn(spec.split(":", 1)[1], spec, test_fraction, seed)
    if not os.path.exists(spec):
        raise WeightkitError(f"--data {spec}: no such file or folder; check the path.")
    if not os.access(spec, os.R_OK):
        raise WeightkitError(f"--data {spec}: cannot be read (permission denied); fix its permissions.")
    if os.path.isdir(spec):
        return _load_image_folder(spec, image_size, test_fraction, seed, channels)
    suffix = os.path.splitext(spec)[1].lower()
    if suffix == ".npz":
        return _load_npz(spec, test_fraction, seed)
    if suffix == ".csv":
        return _load_csv(spec, target, test_fraction, seed)
    raise WeightkitError(
        f"--data {spec}: unsupported data format {suffix or '(no extension)'!r}; use .npz, .csv, an "
        "image folder or sklearn:NAME."
    )
