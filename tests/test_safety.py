"""Safety: no code from a model file runs without --unsafe, no pickles, no archive path escapes;
the matrix functions and the data loader survive arbitrary input.

tests/test_matrices.py already checks the matrix properties on finite float32 rows; here hypothesis
feeds what a user or a broken model could: any dtype, any number of dimensions, empty axes, NaN,
Inf, subnormals, values beyond float32. Every call returns a correct result or raises the documented
:class:`WeightkitError`; anything else (a crash, another exception, a hang past the deadline) fails.
"""

import copy
import csv
import io
import json
import os
import re
import tempfile
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from weightkit.analysis.data.datasets import load_data
from weightkit.analysis.data.checks import check_data_against_model, fit_to_model
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.numeric.groups import find_groups
from weightkit.analysis.numeric.matrices import mad_matrix, pearson_matrix
from weightkit._common import run_cli
from weightkit.cli import cli

REPOSITORY = Path(__file__).resolve().parent.parent
COMMANDS = ["analyze", "report", "retrain", "merge", "quantize"]

# A generous deadline: a hang or a quadratic blow-up on a tiny input fails, a slow CI machine does not.
SETTINGS = settings(max_examples=60, deadline=timedelta(seconds=5),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def run(capsys, argv):
    capsys.readouterr()
    status = run_cli(cli, [str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _argv(command, model, out):
    return {
        "analyze": ["analyze", model],
        "report": ["report", model, "-o", out / "report"],
        "retrain": ["retrain", model, "--data", "sklearn:iris", "-o", out / "r.keras", "--epochs", "1"],
        "merge": ["merge", model, "-o", out / "m.keras"],
        "quantize": ["quantize", model, "-o", out / "q", "--modes", "float32"],
    }[command]


# --------------------------------------------------------------------------------------------------
# Code in a model file


@pytest.fixture(scope="module")
def trap(keras, tmp_path_factory):
    """Iris-shaped models (4 -> 3) whose Lambda layer creates a marker file whenever its code runs.

    Returns ``(paths by format, marker path)``. The lambda is compiled from source so that the
    marker's path is a constant in its bytecode, which Keras stores in the file.
    """
    folder = tmp_path_factory.mktemp("trap")
    marker = folder / "code-ran"
    function = eval(f"lambda t: (open({str(marker)!r}, 'w').close(), t)[1]")  # the trap itself
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(5, activation="relu", name="hidden")(inputs)
    hidden = keras.layers.Lambda(function, name="trap")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(hidden))
    paths = {}
    for fmt in ("keras", "h5"):
        paths[fmt] = folder / f"trap.{fmt}"
        model.save(paths[fmt])
    assert marker.exists()  # building the model ran the lambda: the trap works
    marker.unlink()
    return paths, marker


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("command", COMMANDS)
def test_no_code_from_the_model_file_runs_without_unsafe(capsys, trap, tmp_path, command, fmt):
    paths, marker = trap
    status, out, err = run(capsys, _argv(command, paths[fmt], tmp_path))
    if command in ("analyze", "report"):
        # Weight analysis reads the file's data only (weightkit.analysis.files.stored): the Lambda is listed, never run.
        assert (status, err) == (0, "")
        skipped = "Lambda layer: its code is stored in the file and is not run (weight analysis reads only data)"
        if command == "analyze":
            assert f"skipped trap (Lambda): {skipped}" in out
        else:
            assert skipped in (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    else:
        assert (status, err) == (2, (f"weightkit {command}: error: {paths[fmt]}: layer 'trap' is a Lambda layer, "
                                     "whose code would run while loading; refused in safe mode: pass --unsafe "
                                     "(unsafe=True) only if you trust the file.\n"))
        assert os.listdir(tmp_path) == []
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_analyze_with_data_loads_the_model_and_refuses_its_code(capsys, trap, tmp_path, fmt):
    """--data needs the model itself (Keras), so the safe-mode refusal applies again."""
    paths, marker = trap
    status, _, err = run(capsys, ["analyze", paths[fmt], "--data", "sklearn:iris"])
    assert status == 2 and "layer 'trap' is a Lambda layer, whose code would run while loading" in err
    assert not marker.exists()


@pytest.mark.parametrize("module, class_name, registered", [
    ("os", "system", "weightkit>DecorrelationRegularizer"),
    ("weightkit.compress.decorrelate.penalty", "system", "weightkit>DecorrelationRegularizer"),
    ("os", "DecorrelationRegularizer", "weightkit>DecorrelationRegularizer"),
    (None, "L2", "weightkit>CombinedRegularizer"),
    (None, "L2", "my_project>Anything"),
])
def test_safe_mode_matches_the_whole_identity_not_the_registered_name(keras, tmp_path, module, class_name,
                                                                       registered):
    """A file can claim any registered name: module, class and name must all be what was registered."""
    from weightkit.analysis.files.loading import load_model

    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(3, name="hidden")(inputs)).save(tmp_path / "plain.keras")
    with zipfile.ZipFile(tmp_path / "plain.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    hidden = next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == "hidden")
    hidden["config"]["kernel_regularizer"] = {"module": module, "class_name": class_name, "config": {},
                                              "registered_name": registered}
    path = tmp_path / "forged.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in {**members, "config.json": json.dumps(config)}.items():
            archive.writestr(name, data)
    with pytest.raises(WeightkitError) as info:
        load_model(path)
    what = f"{module}.{class_name} registered as {registered}" if registered.startswith("weightkit>") else registered
    assert str(info.value) == (f"{path}: layer 'hidden' uses an unknown custom object ({what}), whose code would run "
                               "while loading; refused in safe mode: pass --unsafe (unsafe=True) only if you trust "
                               "the file.")


def test_weightkits_own_regularizer_still_loads_in_safe_mode(keras, tmp_path):
    from weightkit.analysis.files.loading import load_model
    from weightkit.compress.decorrelate.penalty import DecorrelationRegularizer

    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(3, name="hidden", kernel_regularizer=DecorrelationRegularizer(0.1))(
        inputs)).save(tmp_path / "kept.keras")
    regularizer = load_model(tmp_path / "kept.keras").model.get_layer("hidden").kernel_regularizer
    assert type(regularizer).__name__ == "DecorrelationRegularizer"


def test_unsafe_warns_and_then_the_code_does_run(capsys, trap, tmp_path):
    paths, marker = trap
    try:
        status, _, err = run(capsys, ["analyze", paths["keras"], "--data", "sklearn:iris", "--unsafe"])
        assert status == 0, err
        assert err.splitlines()[0] == ("weightkit: warning: --unsafe: code stored in the model file may run while "
                                       "loading.")
        assert marker.exists()  # the safe-mode test above would have seen it
    finally:
        if marker.exists():
            marker.unlink()


def test_np_load_never_allows_pickles_and_nothing_unpickles():
    """No source file turns pickles on: np.load's allow_pickle, pickle/joblib/dill loads, torch.load."""
    pattern = re.compile(r"allow_pickle\s*=\s*True|\bpickle\.loads?\(|\bjoblib\.load\(|\bdill\.loads?\("
                         r"|\btorch\.load\(|\bcloudpickle\.loads?\(")
    sources = [path for folder in ("analysis", "compress", "reports", "weightkit", "benchmarks")
               for path in (REPOSITORY / folder).rglob("*.py")]
    assert len(sources) > 20
    offenders = [f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}" for path in sources
                 for number, line in enumerate(path.read_text().splitlines(), start=1) if pattern.search(line)]
    assert offenders == []
    np_loads = [line for path in sources for line in path.read_text().splitlines() if "np.load(" in line]
    assert np_loads and all("allow_pickle=False" in line for line in np_loads)


@pytest.mark.parametrize("member", ["../escaped.txt", "weights/../../escaped.txt", "/tmp/escaped-weightkit.txt"])
@pytest.mark.parametrize("command", COMMANDS)
def test_archive_member_escaping_the_folder_is_refused(capsys, trap, tmp_path, command, member):
    """A .keras member path that would land outside an extraction folder: refused, nothing written."""
    paths, _ = trap
    folder = tmp_path / "in"
    folder.mkdir()
    archive = folder / "escape.keras"
    with zipfile.ZipFile(paths["keras"]) as source, zipfile.ZipFile(archive, "w") as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
        target.writestr(member, "pwned")
    out = tmp_path / "out"
    out.mkdir()
    status, _, err = run(capsys, _argv(command, archive, out))
    assert (status, err) == (2, (f"weightkit {command}: error: {archive}: archive member {member!r} points outside "
                                 "the archive; refusing to read it. Re-save the model with "
                                 "model.save('model.keras').\n"))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["escape.keras", "in", "out"]
    assert not os.path.exists("/tmp/escaped-weightkit.txt")


# --------------------------------------------------------------------------------------------------
# Matrix functions on anything

_dtypes = st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_,
                           np.complex64])
_odd_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(
    [0.0, -0.0, 5e-324, 1e-45, 1e-38, 3.4e38, 3.5e38, 1e300, -1e300]))


@st.composite
def _anything(draw):
    dtype = np.dtype(draw(_dtypes))
    shape = draw(array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    if dtype.kind in "fc":
        elements = _odd_floats.filter(lambda v: dtype.kind == "f" and dtype.itemsize >= 8 or abs(v) < 6e4
                                      or not np.isfinite(v)) if dtype.itemsize < 4 else _odd_floats
        with np.errstate(over="ignore"):
            return draw(arrays(dtype, shape, elements=elements.map(lambda v: dtype.type(v))))
    return draw(arrays(dtype, shape))


@SETTINGS
@given(_anything(), st.sampled_from(["pearson", "mad"]),
       st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)))
def test_matrix_functions_and_grouping_on_any_array(rows, metric, threshold):
    function = pearson_matrix if metric == "pearson" else mad_matrix
    try:
        matrix = function(rows)
    except WeightkitError as error:
        assert "\n" not in str(error)
        # Refused: exactly the inputs the docstring lists.
        finite = rows.dtype.kind in "biu" or (rows.dtype.kind == "f" and np.isfinite(rows).all()
                                               and np.abs(rows.astype(np.float64)).max(initial=0) <= 3.4028235e38)
        assert not (rows.ndim == 2 and rows.size > 0 and rows.dtype.kind in "biuf" and finite), str(error)
        return
    assert rows.ndim == 2 and rows.size > 0 and rows.dtype.kind in "biuf"
    n = rows.shape[0]
    assert matrix.shape == (n, n) and np.isfinite(matrix).all() and (matrix == matrix.T).all()
    if metric == "pearson":
        assert (np.abs(matrix) <= 1).all() and (np.diag(matrix) == 1).all()
    else:
        assert (matrix >= 0).all() and (np.diag(matrix) == 0).all()
    try:
        groups = find_groups(matrix, metric, threshold)
    except WeightkitError as error:
        assert threshold is not None and "\n" not in str(error)
        return
    members = [index for group in groups for index in group]
    assert len(members) == len(set(members)) and set(members) <= set(range(n))
    assert all(len(group) >= 2 for group in groups)


# --------------------------------------------------------------------------------------------------
# The data loader on anything


@pytest.fixture(scope="module")
def models(keras):
    """Input (3,): a classifier with three softmax outputs and a regressor with one linear output."""
    inputs = keras.Input((3,))
    return (keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs)),
            keras.Model(inputs, keras.layers.Dense(1)(inputs)))


_data_dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, np.float16])


def _any_array(n, dtype_strategy=_data_dtypes, max_dims=3):
    return st.tuples(dtype_strategy, array_shapes(min_dims=0, max_dims=max_dims - 1, min_side=0, max_side=4)).flatmap(
        lambda spec: arrays(spec[0], (n,) + spec[1],
                            elements=_odd_floats if np.dtype(spec[0]).kind == "f" and np.dtype(spec[0]).itemsize >= 4
                            else None))


@st.composite
def _npz_contents(draw):
    n = draw(st.integers(0, 7))
    x = draw(_any_array(n))
    y = draw(_any_array(draw(st.sampled_from([n, n, n, max(n - 1, 0), n + 1])), max_dims=2))
    if draw(st.booleans()):
        return {"x": x, "y": y}
    m = draw(st.integers(0, 3))
    return {"x_train": x, "y_train": y, "x_test": draw(_any_array(m)), "y_test": draw(_any_array(m, max_dims=2))}


def _stored_values(arrays):
    """Every number the source held, as float64: accepted labels must be among them."""
    values = []
    with np.errstate(all="ignore"):
        for array in arrays:
            array = np.asarray(array)
            if np.issubdtype(array.dtype, np.number) or array.dtype == bool:
                values.append(array.astype(np.float64).ravel())
    return np.concatenate(values) if values else np.zeros(0)


def _csv_values(text):
    values = []
    for row in csv.reader(io.StringIO(text.replace("\x00", ""))):
        for cell in row:
            try:
                values.append(float(cell))
            except ValueError:
                pass
    return np.asarray(values, dtype=np.float64)


def _check_dataset(dataset, models, stored):
    assert len(dataset.x_train) == len(dataset.y_train) and len(dataset.x_test) == len(dataset.y_test)
    for model in models:
        fitted = copy.deepcopy(dataset)
        try:
            fit_to_model(fitted, model)
            check_data_against_model(fitted, model)
        except WeightkitError as error:
            assert "\n" not in str(error)
            continue
        # Accepted: it fits the model and holds only finite numbers, labels in the model's range.
        assert fitted.x_train.shape[1:] == (3,) and np.isfinite(fitted.x_train.astype(np.float64)).all()
        y = np.concatenate([fitted.y_train.ravel(), fitted.y_test.ravel()]).astype(np.float64)
        assert np.isfinite(y).all()
        if fitted.task == "classification" and fitted.y_train.ndim == 1:
            assert y.min() >= 0 and y.max() <= 2
        else:
            # Every label is a value the file held: no integer cast of Inf or NaN (-2**63) slips in.
            with np.errstate(all="ignore"):
                as_float32 = stored.astype(np.float32).astype(np.float64)
            assert np.isin(y, np.concatenate([stored, as_float32])).all()


@SETTINGS
@given(_npz_contents())
def test_data_loader_on_any_npz(models, tmp_path_factory, contents):
    with tempfile.TemporaryDirectory(dir=tmp_path_factory.getbasetemp()) as folder:  # inside pytest's temp folder
        path = os.path.join(folder, "data.npz")
        with np.errstate(all="ignore"):
            np.savez(path, **contents)
        try:
            dataset = load_data(path)
        except WeightkitError as error:
            assert "\n" not in str(error)
            return
        n = len(contents.get("x", contents.get("x_train")))
        if "x" in contents:
            assert len(dataset.x_train) + len(dataset.x_test) == n >= 2 and len(dataset.x_test) >= 1
        labels = [value for key, value in contents.items() if key.startswith("y")]
        _check_dataset(dataset, models, _stored_values(labels))


_cell = st.one_of(st.integers(-5, 5).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.sampled_from(["", " ", "nan", "1e400", "-0", "0x10", "1_000", "3,5", '"2"', "∞", "١"]),
                  st.text(max_size=4))


@st.composite
def _csv_text(draw):
    columns = draw(st.integers(1, 5))
    header = draw(st.lists(st.text(max_size=3), min_size=columns, max_size=columns))
    rows = draw(st.lists(st.lists(_cell, min_size=draw(st.sampled_from([columns, columns, columns - 1, columns + 1])),
                                  max_size=columns + 1), max_size=6))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue()
    if draw(st.booleans()):  # raw damage: a NUL, a lone quote, a cut-off line
        position = draw(st.integers(0, len(text)))
        text = text[:position] + draw(st.sampled_from(["\x00", '"', "\r", "\ufeff", ""])) + text[position:]
    return text


@SETTINGS
@given(_csv_text(), st.sampled_from(["utf-8", "latin-1", "utf-16"]))
@example("a,b,c,label\n1,2,3,1e400\n1,2,3,1\n1,2,3,0\n1,1,1,2\n", "utf-8")  # an Inf label (was cast to int)
def test_data_loader_on_any_csv(models, tmp_path_factory, text, encoding):
    with tempfile.TemporaryDirectory(dir=tmp_path_factory.getbasetemp()) as folder:  # inside pytest's temp folder
        path = os.path.join(folder, "data.csv")
        with open(path, "wb") as handle:
            handle.write(text.encode(encoding, errors="replace"))
        try:
            dataset = load_data(path)
        except WeightkitError as error:
            assert "\n" not in str(error)
            return
        with open(path, encoding=encoding, errors="replace") as handle:
            stored = _csv_values(handle.read())
        _check_dataset(dataset, models, stored)
