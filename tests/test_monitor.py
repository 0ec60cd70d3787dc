"""RedundancyMonitor: redundancy keys in History and CSVLogger, values as analysis measures them."""

import csv

import numpy as np
import pytest


def planted_rows(rng, n=12, fan_in=20):
    """Rows 0-2 near-copies (a group of 3), row 5 a scaled copy of row 4, row 7 negated row 6."""
    rows = rng.normal(size=(n, fan_in))
    rows[1] = rows[0] + 0.01 * rng.normal(size=fan_in)
    rows[2] = rows[0] + 0.01 * rng.normal(size=fan_in)
    rows[5] = 2.5 * rows[4] + 0.3
    rows[7] = -rows[6]
    return rows.astype(np.float32)


def test_summary_counts_pairs_and_groups_of_planted_rows(rng):
    from weightkit.analysis import pearson_matrix
    from weightkit.compress import redundancy_summary

    rows = planted_rows(rng)
    summary = redundancy_summary(rows)
    r = pearson_matrix(rows)
    upper = r[np.triu_indices(len(rows), 1)]
    assert summary == {"mean_abs_r": pytest.approx(float(np.abs(upper).mean())), "redundant_pairs": 4,
                       "groups": 2, "removable": 3}


def test_summary_of_diverged_weights_is_nan_not_an_error(rng):
    from weightkit.compress import redundancy_summary

    rows = planted_rows(rng)
    rows[3, 2] = np.nan
    summary = redundancy_summary(rows)
    assert np.isnan(summary["mean_abs_r"]) and summary["redundant_pairs"] == 0


@pytest.fixture(scope="module")
def planted_model(keras):
    rng = np.random.default_rng(0)
    inputs = keras.Input((20,))
    x = keras.layers.Dense(12, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(x)
    model = keras.Model(inputs, outputs, name="planted")
    model.get_layer("hidden").kernel.assign(planted_rows(rng).T)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="sparse_categorical_crossentropy")
    x = rng.normal(size=(64, 20)).astype(np.float32)
    y = rng.integers(0, 3, size=64)
    return model, x, y


def test_monitor_puts_redundancy_into_history_and_csv(keras, planted_model, tmp_path):
    from weightkit.compress import RedundancyMonitor, redundancy_summary

    model, x, y = planted_model
    monitor = RedundancyMonitor(layers=["hidden"])
    path = tmp_path / "log.csv"
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0,
                        callbacks=[monitor, keras.callbacks.CSVLogger(str(path))])
    keys = ["redundancy/hidden/mean_abs_r", "redundancy/hidden/redundant_pairs", "redundancy/hidden/groups"]
    for key in keys:
        assert len(history.history[key]) == 2
    assert monitor.initial["redundancy/hidden/redundant_pairs"] == 4.0
    assert monitor.initial["redundancy/hidden/groups"] == 2.0
    final = redundancy_summary(keras.ops.convert_to_numpy(model.get_layer("hidden").kernel).T)
    assert history.history["redundancy/hidden/mean_abs_r"][-1] == pytest.approx(final["mean_abs_r"])
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row[keys[1]]) for row in rows] == history.history[keys[1]]


def test_monitor_watches_every_entry_by_default_and_each_rnn_gate(keras):
    from weightkit.compress import RedundancyMonitor

    inputs = keras.Input((5, 3))
    x = keras.layers.LSTM(4, name="lstm")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    monitor = RedundancyMonitor()
    monitor.set_model(model)
    names = sorted(key[len("redundancy/"):-len("/groups")] for key in monitor.measure() if key.endswith("/groups"))
    assert names == ["lstm/cell", "lstm/forget", "lstm/input", "lstm/output", "out"]


def test_monitor_refuses_an_unknown_layer(keras, planted_model):
    from weightkit.analysis.errors import WeightkitError
    from weightkit.compress import RedundancyMonitor

    monitor = RedundancyMonitor(layers=["hiden"])
    monitor.set_model(planted_model[0])
    with pytest.raises(WeightkitError) as error:
        monitor.measure()
    assert str(error.value) == ("RedundancyMonitor: no analyzable layer named 'hiden' in model 'planted'; give "
                                "the names of Dense, Conv or RNN layers.")
