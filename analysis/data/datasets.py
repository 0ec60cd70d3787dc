"""One data loader for every command that takes ``--data``.

Accepted specifications:

- ``PATH.npz`` with ``x``, ``y`` (split here) or ``x_train``, ``y_train``, ``x_test``, ``y_test``;
  a model with several inputs takes ``x0``, ``x1``... or ``x_<input name>`` (each with ``_train`` /
  ``_test`` where split), labels of several outputs ``y0``, ``y1``... or ``y_<output name>``; ``y``
  goes with the first output. Labels are optional: without any ``y`` the dataset has inputs only
  (enough for ``analyze --data``, ``report --data`` and ``merge --mode data``);
- ``PATH.csv`` with a header and a label column (``target``, default the last column);
- a folder of images in class subfolders (``keras.utils.image_dataset_from_directory``), or of
  images alone (inputs only, no labels);
- ``sklearn:NAME`` for scikit-learn's bundled datasets: digits (pixels scaled to [0, 1]), iris,
  wine, breast_cancer, diabetes (regression). No download.

``np.load`` is always called with ``allow_pickle=False``.
"""

import os
import zipfile
from dataclasses import dataclass

import numpy as np

from weightkit.analysis._tf import import_keras, silenced_stderr
from weightkit.analysis.data.batches import n_samples, take
from weightkit.analysis.data.csv_data import read_csv_numbers
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.limits import check_npz_headers, check_regular_file, check_zip_directory

__all__ = ["Dataset", "check_data_spec", "load_data", "SKLEARN_DATASETS"]

SKLEARN_DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass
class Dataset:
    """Training and held-out arrays.

    Attributes
    ----------
    x_train : ndarray of shape (n_train, ...), or list of them
        One array per model input (a list, in the model's input order, for several inputs).
    y_train : ndarray of shape (n_train, ...), list of them (or of None), or None
        Labels: one array, one per model output (None for an output without labels), or None
        for a dataset of inputs only.
    x_test, y_test
        The held-out split, in the same form.
    source : str
        The specification it was loaded from.
    task : {"classification", "regression"} or None
        Of the first labelled output; None without labels.
    input_keys, output_keys : tuple of str
        The ``.npz`` array names behind a list of inputs or labels (``("x0", "x1")``,
        ``("y_class", "y_box")``), for :func:`weightkit.analysis.data.checks.fit_to_model` to order them.
    """

    x_train: object
    y_train: object
    x_test: object
    y_test: object
    source: str
    task: object
    input_keys: tuple = ()
    output_keys: tuple = ()

    @property
    def labelled(self):
        """Whether the dataset has labels for at least one output."""
        return _first_labels(self.y_train) is not None

    @property
    def n_train(self):
        return n_samples(self.x_train)

    @property
    def n_test(self):
        return n_samples(self.x_test)

    @property
    def n_classes(self):
        """Classes of the first labelled output (None for regression or without labels)."""
        if self.task != "classification" or not self.labelled:
            return None
        y = np.concatenate([_first_labels(self.y_train), _first_labels(self.y_test)])
        return int(y.shape[1]) if y.ndim == 2 else int(y.max()) + 1


def _first_labels(y):
    if isinstance(y, list):
        return next((labels for labels in y if labels is not None), None)
    return y


def _split(x, y, source, task, test_fraction, seed, input_keys=(), output_keys=()):
    n = n_samples(x)
    if n == 0:
        raise WeightkitError(f"{source}: the dataset is empty; give at least 2 samples.")
    labels = [a for a in (y if isinstance(y, list) else [y]) if a is not None]
    if any(len(a) != n for a in labels):
        raise WeightkitError(
            f"{source}: {n} inputs but {len(next(a for a in labels if len(a) != n))} labels; x and y must have "
            "the same length."
        )
    if n < 2:
        raise WeightkitError(f"{source}: only {n} sample; give at least 2 so a test split exists.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_test = min(n - 1, max(1, int(round(test_fraction * n))))
    test, train = order[:n_test], order[n_test:]
    return Dataset(take(x, train), take(y, train), take(x, test), take(y, test), source, task,
                   tuple(input_keys), tuple(output_keys))


def _task_of(y):
    if y is None:
        return None
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

    bunch = getattr(datasets, f"load_{name}")()
    x = bunch.data.astype(np.float32)
    if name == "digits":
        x = x / 16.0
    y = bunch.target.astype(np.float32 if name == "diabetes" else np.int64)
    task = "regression" if name == "diabetes" else "classification"
    return _split(x, y, source, task, test_fraction, seed)


def _load_npz(path, test_fraction, seed):
    check_regular_file(path, "--data ")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head != b"PK\x03\x04" and head != b"PK\x05\x06":  # np.savez writes a zip archive
        what = "is an empty file" if not head else "is not an .npz archive (unrecognized content)"
        raise WeightkitError(f"--data {path}: {what}; save the arrays with np.savez(path, x=..., y=...).")
    arrays, reading = {}, None
    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_directory(path, archive, fix="Save the arrays uncompressed with np.savez(path, x=..., y=...).")
            check_npz_headers(path, archive)
        with np.load(path, allow_pickle=False) as archive:
            for reading in archive.files:
                arrays[reading] = archive[reading]
    except ValueError as error:
        if "allow_pickle" in str(error) or "Object arrays" in str(error):
            raise WeightkitError(
                f"{path}: holds Python objects (pickled arrays), which are not loaded for safety; "
                "save plain numeric arrays with np.savez."
            ) from error
        what = f"array {reading}.npy" if reading else "an array"  # short data ("EOF: reading array data")
        raise WeightkitError(
            f"{path}: {what} is truncated or corrupt ({' '.join(str(error).split())[:160]}); save the arrays again "
            "with np.savez(path, x=..., y=...)."
        ) from error
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise WeightkitError(f"{path}: not a readable .npz file ({error}); save it with np.savez.") from error
    return _npz_dataset(arrays, path, test_fraction, seed)


def _array_key(key):
    """``(stem, split)`` of an .npz array name: ``x_tokens_train`` -> ``("x_tokens", "train")``; None if no x/y."""
    stem, split = key, None
    for name in ("train", "test"):
        if key.endswith("_" + name):
            stem, split = key[: -len(name) - 1], name
    if stem[:1] not in ("x", "y") or not (len(stem) == 1 or stem[1:].isdigit() or stem[1:2] == "_"):
        return None
    return stem, split


def _npz_dataset(arrays, path, test_fraction, seed):
    """A Dataset from an .npz archive's arrays (see the module docstring for the names)."""
    stems = {}
    for key in arrays:
        parsed = _array_key(key)
        if parsed is not None:
            stems.setdefault(parsed[0], {})[parsed[1]] = key
    inputs = sorted(stem for stem in stems if stem[0] == "x")
    outputs = sorted(stem for stem in stems if stem[0] == "y")
    if not inputs:
        raise WeightkitError(
            f"{path}: has arrays {sorted(arrays)}, expected x and y (or x_train, y_train, x_test, y_test; x0, x1... "
            "for several inputs)."
        )
    styles = {stem: ("split" if set(stems[stem]) == {"train", "test"} else "whole" if set(stems[stem]) == {None}
                     else "mixed") for stem in inputs + outputs}
    if "mixed" in styles.values() or len(set(styles.values())) > 1:
        raise WeightkitError(
            f"{path}: has arrays {sorted(arrays)}; give every array either whole (x, y) or split in two "
            "(x_train and x_test, y_train and y_test), not both."
        )

    def pick(names, split):
        values = [_numeric(arrays[stems[stem][split]], path, stems[stem][split]) for stem in names]
        if not values:
            return None
        return values[0] if len(values) == 1 and names[0] in ("x", "y") else values

    def keys(names):
        return () if len(names) == 1 and names[0] in ("x", "y") else tuple(names)

    if styles[inputs[0]] == "whole":
        x, y = pick(inputs, None), pick(outputs, None)
        return _split(x, y, path, _task_of(_first_labels(y)), test_fraction, seed, keys(inputs), keys(outputs))
    parts = {split: (pick(inputs, split), pick(outputs, split)) for split in ("train", "test")}
    for split, (x, y) in parts.items():
        n = n_samples(x)
        if n == 0:
            raise WeightkitError(f"{path}: x_{split} is empty; give at least one sample.")
        for labels in (y if isinstance(y, list) else [y]):
            if labels is not None and len(labels) != n:
                raise WeightkitError(f"{path}: x_{split} has {n} samples but y_{split} has {len(labels)}; they must "
                                     "match.")
    (x_train, y_train), (x_test, y_test) = parts["train"], parts["test"]
    return Dataset(x_train, y_train, x_test, y_test, source=path, task=_task_of(_first_labels(y_train)),
                   input_keys=keys(inputs), output_keys=keys(outputs))


def _load_csv(path, target, test_fraction, seed, features=None):
    header, values = read_csv_numbers(path)
    column = len(header) - 1
    if target is None and features is not None and len(header) == features:
        column = None  # every column is an input: a CSV without labels
    if target is not None:
        if target not in header:
            raise WeightkitError(f"{path}: no column named {target!r} for --target; columns: {', '.join(header)}.")
        column = header.index(target)
    if column is None:
        return _split(values.astype(np.float32), None, path, None, test_fraction, seed)
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
    loose = sorted(f for f in os.listdir(path) if f.lower().endswith(_IMAGE_SUFFIXES)
                   and os.path.isfile(os.path.join(path, f)))
    labelled = bool(classes and images)
    files = [os.path.join(c, f) for c in classes for f in os.listdir(os.path.join(path, c))
             if f.lower().endswith(_IMAGE_SUFFIXES)] if labelled else loose
    for name in files:
        check_regular_file(os.path.join(path, name), "--data ")  # a FIFO or /dev/zero would hang the decoder
    if not labelled and not loose:
        raise WeightkitError(
            f"{path}: no images in class subfolders (expected {path}/CLASS/IMAGE.png); check the folder."
        )
    keras = import_keras()
    try:
        with silenced_stderr():
            dataset = keras.utils.image_dataset_from_directory(
                path, image_size=image_size, batch_size=None, shuffle=False,
                label_mode="int" if labelled else None, labels="inferred" if labelled else None,
                color_mode=_COLOR_MODES.get(channels, "rgb"), verbose=False)
            xs, ys = [], []
            for item in dataset:
                x, y = item if labelled else (item, None)
                xs.append(np.asarray(x))
                if labelled:
                    ys.append(int(y))
    except Exception as error:  # noqa: BLE001 - decoding failures come from TensorFlow
        culprit = _undecodable_image(path, classes if labelled else [""])
        what = f"image {culprit} could not be decoded" if culprit else \
            f"an image could not be decoded ({' '.join(str(error).split())[:160]})"
        raise WeightkitError(f"{path}: {what}; remove or replace corrupt images.") from error
    if not labelled:  # images alone: inputs without labels
        return _split(np.stack(xs).astype(np.float32), None, path, None, test_fraction, seed)
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


def load_data(spec, *, target=None, image_size=(256, 256), test_fraction=0.2, seed=0, channels=3, features=None):
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
    features : int, default=None
        The model's number of input features: a CSV with exactly this many columns and no
        ``target`` is read as inputs without labels.

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
    kind = check_data_spec(spec)
    spec = os.fspath(spec)
    if kind == "sklearn":
        return _load_sklearn(spec.split(":", 1)[1], spec, test_fraction, seed)
    if kind == "folder":
        return _load_image_folder(spec, image_size, test_fraction, seed, channels)
    if kind == "npz":
        return _load_npz(spec, test_fraction, seed)
    return _load_csv(spec, target, test_fraction, seed, features)


def check_data_spec(spec):
    """Check a ``--data`` specification without reading the data (and without TensorFlow).

    What :func:`load_data` checks first, for the command line to run before anything heavy is
    imported: a known ``sklearn:NAME``, a path that exists and can be read, a folder or a regular
    ``.npz`` / ``.csv`` file (not a FIFO or a device).

    Parameters
    ----------
    spec : str or os.PathLike

    Returns
    -------
    {"sklearn", "folder", "npz", "csv"}

    Raises
    ------
    WeightkitError
        In one line naming ``--data`` and the fix.
    """
    spec = os.fspath(spec)
    if spec.startswith("sklearn:"):
        name = spec.split(":", 1)[1]
        if name not in SKLEARN_DATASETS:
            raise WeightkitError(
                f"--data {spec}: unknown bundled dataset {name!r}; expected one of "
                f"{', '.join('sklearn:' + n for n in SKLEARN_DATASETS)}."
            )
        return "sklearn"
    if not os.path.exists(spec):
        raise WeightkitError(f"--data {spec}: no such file or folder; check the path.")
    if not os.access(spec, os.R_OK):
        raise WeightkitError(f"--data {spec}: cannot be read (permission denied); fix its permissions.")
    if os.path.isdir(spec):
        return "folder"
    suffix = os.path.splitext(spec)[1].lower()
    if suffix not in (".npz", ".csv"):
        raise WeightkitError(
            f"--data {spec}: unsupported data format {suffix or '(no extension)'!r}; use .npz, .csv, an "
            "image folder or sklearn:NAME."
        )
    check_regular_file(spec, "--data ")
    return suffix[1:]
