"""retrain(): loss choice, redundancy reduced, resume after an interruption, MirroredStrategy, the CLI."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from weightkit.analysis.data.datasets import Dataset
from weightkit.analysis.errors import WeightkitError


def _model(keras, hidden=16, output=10, activation="softmax", inputs=64):
    x = keras.Input((inputs,))
    h = keras.layers.Dense(hidden, activation="relu", name="hidden")(x)
    return keras.Model(x, keras.layers.Dense(output, activation=activation, name="out")(h))


def _dataset(y, task="classification"):
    y = np.asarray(y)
    x = np.zeros((len(y), 64), np.float32)
    return Dataset(x, y, x, y, "test", task)


@pytest.mark.parametrize("activation, output, y, task, expected", [
    ("softmax", 10, np.arange(10), "classification",
     "sparse_categorical_crossentropy (inferred: softmax output, integer labels)"),
    ("softmax", 10, np.eye(10), "classification",
     "categorical_crossentropy (inferred: softmax output, one-hot labels)"),
    ("linear", 10, np.arange(10), "classification",
     "sparse_categorical_crossentropy (from logits) (inferred: linear output, integer labels)"),
    ("sigmoid", 1, np.arange(10) % 2, "classification",
     "binary_crossentropy (inferred: sigmoid output, 0/1 labels)"),
    ("linear", 1, np.linspace(0, 1, 10), "regression",
     "mean_squared_error (inferred: linear output, real-valued labels)"),
])
def test_loss_is_inferred_from_output_and_labels(keras, activation, output, y, task, expected):
    from weightkit.compress.decorrelate.training import infer_loss

    _, description = infer_loss(_model(keras, output=output, activation=activation), _dataset(y, task))
    assert description == expected


def test_loss_option_overrides_and_unknown_names_list_the_choices(keras):
    from weightkit.compress.decorrelate.training import infer_loss

    model = _model(keras)
    loss, description = infer_loss(model, _dataset(np.arange(10)), "mean_squared_error")
    assert isinstance(loss, keras.losses.MeanSquaredError) and description == "mean_squared_error"
    with pytest.raises(WeightkitError) as error:
        infer_loss(model, _dataset(np.arange(10)), "hinge")
    assert str(error.value) == ("--loss: unknown loss 'hinge'; expected one of sparse_categorical_crossentropy, "
                                "categorical_crossentropy, binary_crossentropy, mean_squared_error, "
                                "mean_absolute_error, huber.")


def _planted(keras, seed=0):
    """64-32-10 MLP whose hidden layer holds 16 near-copies of its other 16 neurons."""
    keras.utils.set_random_seed(seed)
    model = _model(keras, hidden=32)
    kernel = keras.ops.convert_to_numpy(model.get_layer("hidden").kernel)
    rng = np.random.default_rng(seed)
    kernel[:, 16:] = kernel[:, :16] + 0.02 * rng.normal(size=(64, 16))
    model.get_layer("hidden").kernel.assign(kernel)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_short_retrain_decorrelates_a_planted_redundant_layer(keras, digits):
    from weightkit.compress.decorrelate import retrain

    model = _planted(keras)
    before_kernel = keras.ops.convert_to_numpy(model.get_layer("hidden").kernel).copy()
    trained, result = retrain(model, digits, strength=1.0, epochs=3, validation_split=0.0, seed=0)
    before, after = result.before["layers"]["hidden"], result.after["layers"]["hidden"]
    assert before["redundant_pairs"] >= 16 and after["redundant_pairs"] < before["redundant_pairs"] / 4
    assert after["mean_abs_r"] < 0.8 * before["mean_abs_r"]
    assert result.layers == ["hidden"] and result.metric == "accuracy"
    assert result.history["epoch"] == [1, 2, 3]
    assert len(result.history["redundancy/hidden/mean_abs_r"]) == 4  # epoch 0 = before
    # The input model is not modified; the trained copy carries no regularizer by default.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("hidden").kernel), before_kernel)
    assert trained.get_layer("hidden").kernel.regularizer is None
    assert trained is not model


class _Interrupt:
    """A callback that fails at the end of epoch ``k`` (after the backup of that epoch)."""

    def __new__(cls, keras, k):
        class Interrupt(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch + 1 == k:
                    raise RuntimeError("simulated crash")

        return Interrupt()


def test_resume_after_an_interruption_runs_only_the_remaining_epochs(keras, digits, tmp_path):
    from weightkit.compress.decorrelate import retrain

    work = str(tmp_path / "work")
    model = _planted(keras)
    with pytest.raises(RuntimeError, match="simulated crash"):
        retrain(model, digits, epochs=4, work_dir=work, validation_split=0.0, callbacks=[_Interrupt(keras, 2)])
    with open(os.path.join(work, "training_metadata.json")) as handle:
        assert json.load(handle)["epoch"] == 2

    seen = []

    class Count(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    _, result = retrain(model, digits, epochs=4, work_dir=work, resume=True, validation_split=0.0,
                        callbacks=[Count()])
    assert seen == [2, 3] and result.initial_epoch == 2
    assert result.history["epoch"] == [1, 2, 3, 4]
    assert len(result.history["loss"]) == 4 and len(result.history["redundancy/hidden/mean_abs_r"]) == 5


def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    script = textwrap.dedent("""
        import os, json
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        from weightkit.analysis._tf import import_tensorflow
        tf = import_tensorflow()
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from weightkit.analysis.data.datasets import load_data
        from weightkit.demo.examples import build_wide_mlp
        from weightkit.compress import retrain
        model = build_wide_mlp((16,), weight_decay=0)
        _, result = retrain(model, load_data("sklearn:digits"), epochs=2, batch_size=128,
                            learning_rate=1e-2, validation_split=0.0)
        print(json.dumps({"strategy": result.strategy, "replicas": result.replicas,
                          "before": result.before["accuracy"], "after": result.after["accuracy"]}))
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["strategy"] == "MirroredStrategy" and report["replicas"] == 2
    assert report["after"] > report["before"] + 0.2  # it trained: chance level is 0.1


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _run(argv, capsys):
    from weightkit._common import run_cli
    from weightkit.cli import cli

    status = run_cli(cli, argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_writes_model_json_and_plot_and_leaves_the_input_alone(keras, mlp_path, tmp_path, capsys):
    from weightkit.analysis import load_model

    out = str(tmp_path / "retrained.keras")
    checksum = _sha(mlp_path)
    status, stdout, stderr = _run(["retrain", mlp_path, "--data", "sklearn:digits", "-o", out, "--epochs", "2",
                                   "--strength", "0.5", "--layers", "hidden1", "--quiet"], capsys)
    assert status == 0, stderr
    assert _sha(mlp_path) == checksum
    assert "held-out accuracy:" in stdout and "hidden1" in stdout
    document = json.load(open(tmp_path / "retrained.json"))
    assert document["layers"] == ["hidden1"] and document["strength"] == 0.5 and document["epochs"] == 2
    assert set(document["before"]["layers"]["hidden1"]) == {"mean_abs_r", "redundant_pairs", "groups", "removable"}
    assert len(document["history"]["redundancy/hidden1/mean_abs_r"]) == 3
    assert open(tmp_path / "retrained.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert not os.path.exists(tmp_path / ".retrained.keras.retrain")  # work folder removed after success
    assert sorted(os.listdir(tmp_path)) == ["retrained.json", "retrained.keras", "retrained.png"]
    with zipfile.ZipFile(out) as archive:  # loads anywhere: no weightkit class in the saved model
        assert "weightkit" not in archive.read("config.json").decode()
    # The saved model is the trained one: it scores the held-out accuracy the JSON reports (the same
    # seeded split of digits), which neither the input model nor a broken save would.
    from weightkit.analysis.data.datasets import load_data

    digits = load_data("sklearn:digits", seed=0)
    reloaded = load_model(out).model
    accuracy = float(np.mean(reloaded.predict(digits.x_test, verbose=0).argmax(1) == digits.y_test))
    assert accuracy == pytest.approx(document["after"]["accuracy"], abs=1e-9)
    # Two epochs can leave the accuracy where it was; the weights cannot stay where they were.
    original = load_model(mlp_path).model
    assert not np.allclose(reloaded.get_layer("hidden1").get_weights()[0], original.get_layer("hidden1").get_weights()[0])

    status, _, stderr = _run(["retrain", mlp_path, "--data", "sklearn:digits", "-o", out], capsys)
    assert status == 2
    assert stderr == (f"weightkit retrain: error: {out}: already exists; pass --force to replace it or choose "
                      "another path.\n")


def test_cli_keep_regularizer_saves_a_model_that_reloads_with_it(keras, mlp_path, tmp_path, capsys):
    from weightkit.analysis import load_model
    from weightkit.compress import DecorrelationRegularizer

    out = str(tmp_path / "kept.keras")
    status, _, stderr = _run(["retrain", mlp_path, "--data", "sklearn:digits", "-o", out, "--epochs", "1",
                              "--keep-regularizer", "--validation-split", "0", "--quiet"], capsys)
    assert status == 0, stderr
    parts = load_model(out).model.get_layer("hidden2").kernel.regularizer.regularizers
    assert isinstance(parts[-1], DecorrelationRegularizer)


def test_a_model_kept_with_its_regularizer_loads_where_compress_was_never_imported(mlp_path, tmp_path, capsys):
    out = str(tmp_path / "kept.keras")
    status, _, stderr = _run(["retrain", mlp_path, "--data", "sklearn:digits", "-o", out, "--epochs", "1",
                              "--keep-regularizer", "--validation-split", "0", "--quiet"], capsys)
    assert status == 0, stderr
    script = textwrap.dedent("""
        import json, sys
        from weightkit.analysis import load_model
        before = sorted(name for name in sys.modules if name.startswith("weightkit.compress"))
        model = load_model(sys.argv[1]).model  # safe mode
        regularizer = model.get_layer("hidden2").kernel_regularizer
        print(json.dumps({"before": before, "combined": type(regularizer).__name__,
                          "parts": [type(part).__name__ for part in regularizer.regularizers]}))
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", script, out], cwd=str(tmp_path),
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=root), capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"before": [], "combined": "CombinedRegularizer", "parts": ["L2", "DecorrelationRegularizer"]}


@pytest.mark.parametrize("argv, expected", [
    (["-o", "{tmp}/out.h5"], "{tmp}/out.h5: the retrained model is saved in the Keras format; give a name ending "
                             "in .keras."),
    (["-o", "{tmp}/out.keras", "--layers", "nope"], "--layers: no regularizable layer named 'nope'; available: "
                                                    "hidden1, hidden2, classes."),
    (["-o", "{tmp}/out.keras", "--loss", "hinge"], "--loss: unknown loss 'hinge'; expected one of "
     "sparse_categorical_crossentropy, categorical_crossentropy, binary_crossentropy, mean_squared_error, "
     "mean_absolute_error, huber."),
    (["-o", "{tmp}/stale.keras"], "{tmp}/stale.keras: an interrupted run left its backup in "
                                  "{tmp}/.stale.keras.retrain; pass --resume to continue it or --force to start over."),
])
def test_cli_user_errors_are_one_line(mlp_path, tmp_path, capsys, argv, expected):
    (tmp_path / ".stale.keras.retrain").mkdir()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    status, _, stderr = _run(["retrain", mlp_path, "--data", "sklearn:digits", "--epochs", "1", *argv], capsys)
    assert status == 2
    assert stderr == f"weightkit retrain: error: {expected.replace('{tmp}', str(tmp_path))}\n"
    assert sorted(os.listdir(tmp_path)) == [".stale.keras.retrain"]


def test_cli_rejects_2d_data_for_a_recurrent_model(keras, tmp_path, capsys):
    inputs = keras.Input((8, 8))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.LSTM(4)(inputs)))
    model.save(tmp_path / "rnn.keras")
    status, _, stderr = _run(["retrain", str(tmp_path / "rnn.keras"), "--data", "sklearn:iris", "-o",
                              str(tmp_path / "out.keras")], capsys)
    assert status == 2
    assert stderr == ("weightkit retrain: error: --data sklearn:iris: the model expects input of shape (batch, 8, 8), "
                      "the data has (batch, 4) (2 dimensions instead of 3). A recurrent model expects (batch, "
                      "timesteps, features): reshape the data, e.g. x.reshape(len(x), 8, 8).\n")


def test_command_default_strength_matches_the_library():
    from weightkit.compress.decorrelate.training import DEFAULT_STRENGTH
    from weightkit.commands import retrain as command

    assert command.DEFAULT_STRENGTH == DEFAULT_STRENGTH


def test_console_script_help_is_fast_and_clean():
    script = os.path.join(os.path.dirname(sys.executable), "weightkit")  # the venv's, whatever PATH holds
    done = subprocess.run([script, "retrain", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == ""
    for option in ("--data", "--strength", "--resume", "--keep-regularizer", "--validation-split", "--loss"):
        assert option in done.stdout


def test_regression_reports_mean_absolute_error(keras):
    from weightkit.analysis.data.datasets import load_data
    from weightkit.compress.decorrelate import retrain

    keras.utils.set_random_seed(0)
    inputs = keras.Input((10,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="target")(hidden))
    data = load_data("sklearn:diabetes")
    _, result = retrain(model, data, epochs=2, learning_rate=1e-2, validation_split=0.0)
    assert result.metric == "mae" and result.loss.startswith("mean_squared_error (inferred: linear output")
    assert result.after["mae"] < result.before["mae"]  # targets are ~150: an untrained net is far off
    assert result.layers == ["hidden"] and "mae" in result.history


# ---------------------------------------------------------------- labels matched to the compiled loss (issue 17 item 14)


def _labels_model(keras, loss, path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="x")
    hidden = keras.layers.Dense(6, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(hidden))
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    model.save(path)
    return str(path)


def test_labels_are_matched_to_the_loss_or_refused_in_one_line(keras):
    from weightkit.compress.decorrelate.label_match import match_labels_to_loss

    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(inputs))
    indices = np.array([0, 2, 1, 2])
    one_hot = np.eye(3)[indices]
    data, notes = match_labels_to_loss(model, Dataset(None, one_hot, None, one_hot, "d.npz", "classification"),
                                       "sparse_categorical_crossentropy")
    np.testing.assert_array_equal(data.y_train, indices)
    assert notes == ["labels: one-hot, converted to class indices for the compiled sparse_categorical_crossentropy"]
    data, notes = match_labels_to_loss(model, Dataset(None, indices, None, indices, "d.npz", "classification"),
                                       keras.losses.CategoricalCrossentropy())
    np.testing.assert_array_equal(data.y_train, one_hot)
    assert notes == ["labels: class indices, converted to one-hot rows of 3 for the compiled categorical_crossentropy"]
    same = Dataset(None, indices, None, indices, "d.npz", "classification")
    assert match_labels_to_loss(model, same, "sparse_categorical_crossentropy") == (same, [])
    soft = np.full((4, 3), 1 / 3)
    with pytest.raises(WeightkitError) as info:
        match_labels_to_loss(model, Dataset(None, soft, None, soft, "d.npz", "classification"),
                             keras.losses.SparseCategoricalCrossentropy())
    assert str(info.value) == (
        "--data d.npz: labels of shape (3,) per sample are soft (not one-hot), but the model was compiled with "
        "sparse_categorical_crossentropy, which takes one class index per sample; pass --loss "
        "categorical_crossentropy, or give integer class labels.")


def test_retrain_converts_integer_labels_for_a_keras2_file_compiled_with_categorical_crossentropy(keras, tmp_path,
                                                                                                    capsys):
    """It ended in "internal error"; the reverse (one-hot for sparse CE) is the unit test above."""
    import h5py

    legacy = _labels_model(keras, "categorical_crossentropy", tmp_path / "keras2.h5")
    with h5py.File(legacy, "r+") as handle:  # as Keras 2.11 stamped it (it compiles in Keras 3: no "lr")
        handle.attrs["keras_version"] = "2.11.0"
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "indices.npz", x=rng.normal(size=(40, 8)).astype(np.float32), y=rng.integers(0, 3, 40))
    said = "labels: class indices, converted to one-hot rows of 3 for the compiled categorical_crossentropy"
    status, _, stderr = _run(["retrain", legacy, "--data", str(tmp_path / "indices.npz"), "-o",
                              str(tmp_path / "r.keras"), "--epochs", "1", "--validation-split", "0"], capsys)
    assert status == 0, stderr
    assert f"weightkit: {said}\n" in stderr
    assert json.load(open(tmp_path / "r.json"))["notes"] == [said]


def test_soft_labels_for_a_sparse_loss_are_one_line_and_leave_no_work_folder(keras, tmp_path, capsys):
    sparse = _labels_model(keras, "sparse_categorical_crossentropy", tmp_path / "sparse.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "soft.npz", x=rng.normal(size=(20, 8)).astype(np.float32),
             y=rng.dirichlet(np.ones(3), 20).astype(np.float32))
    before = sorted(os.listdir(tmp_path))
    status, _, stderr = _run(["retrain", sparse, "--data", str(tmp_path / "soft.npz"), "-o", str(tmp_path / "r.keras"),
                              "--epochs", "1"], capsys)
    assert status == 2
    assert stderr == (f"weightkit retrain: error: --data {tmp_path / 'soft.npz'}: labels of shape (3,) per sample "
                      "are soft (not one-hot), but the model was compiled with sparse_categorical_crossentropy, which "
                      "takes one class index per sample; pass --loss categorical_crossentropy, or give integer class "
                      "labels.\n")
    assert sorted(os.listdir(tmp_path)) == before


def test_a_failed_fresh_run_leaves_no_backup_a_rerun_would_claim(keras, tmp_path):
    from weightkit.compress.decorrelate import retrain

    work = tmp_path / "work"
    x, y = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32), np.arange(16) % 3
    with pytest.raises(RuntimeError, match="simulated crash"):
        retrain(_labels_model(keras, "sparse_categorical_crossentropy", tmp_path / "m.keras"),
                Dataset(x, y, x, y, "d.npz", "classification"), epochs=2, work_dir=str(work), validation_split=0.0,
                callbacks=[_FailAtStart(keras)])
    assert not work.exists()


class _FailAtStart:
    """A callback that fails before the first epoch ends (no backup written yet)."""

    def __new__(cls, keras):
        class FailAtStart(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                raise RuntimeError("simulated crash")

        return FailAtStart()
