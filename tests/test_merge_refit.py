"""Sequential refit and BatchNormalization re-estimation of a data-aware merge (issue 15).

Every model is tiny, seeded, and saved and reloaded before merging.
"""

import numpy as np
import pytest

from weightkit.compress.merge.fitting.group_fit import plan_group_fit
from weightkit.compress.merge.fitting.refit_fit import choose_refit_map, fit_refit_map, refit_selection
from tests.zoo import reloaded, scaled_weights

# Outputs of order 1; an exact merge changes them by float32 rounding only.
ATOL = 1e-5


def _two_blocks(keras, rng, width=8):
    """Stem conv and two residual blocks (conv-BN-ReLU-conv-BN, Add, ReLU), GAP, Dense: the residual stream is one
    coupled group read after each block, so one-shot fits there miss what the merged blocks changed."""
    L = keras.layers
    inputs = keras.Input((6, 6, 3))
    x = L.ReLU(name="stem_relu")(L.BatchNormalization(name="stem_bn")(L.Conv2D(width, 3, padding="same",
                                                                                  name="stem")(inputs)))
    for b in range(2):
        y = L.ReLU(name=f"r{b}")(L.BatchNormalization(name=f"bn{b}a")(L.Conv2D(width, 3, padding="same",
                                                                                name=f"c{b}a")(x)))
        y = L.BatchNormalization(name=f"bn{b}b")(L.Conv2D(width, 3, padding="same", name=f"c{b}b")(y))
        x = L.ReLU(name=f"o{b}")(L.Add(name=f"add{b}")([x, y]))
    model = keras.Model(inputs, L.Dense(3, name="head")(L.GlobalAveragePooling2D(name="gap")(x)))
    scaled_weights(model, rng)
    return model


def _residual_cnn(keras, rng):
    L = keras.layers
    inputs = keras.Input((5, 5, 3))
    x = L.ReLU(name="stem_relu")(L.BatchNormalization(name="stem_bn")(L.Conv2D(6, 3, padding="same",
                                                                                  name="stem")(inputs)))
    y = L.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(x)
    y = L.BatchNormalization(name="bn2")(L.Conv2D(6, 3, padding="same", name="conv2")(y))
    shortcut = L.BatchNormalization(name="short_bn")(L.Conv2D(6, 1, name="shortcut")(x))
    z = L.ReLU(name="out_relu")(L.Add(name="add")([y, shortcut]))
    model = keras.Model(inputs, L.Dense(3, name="head")(L.GlobalAveragePooling2D(name="gap")(z)))
    scaled_weights(model, rng)
    for producer, bn in (("conv2", "bn2"), ("shortcut", "short_bn")):  # an exact copy in both branches
        layer = model.get_layer(producer)
        kernel, bias = layer.get_weights()
        kernel[..., 4], bias[4] = 2.0 * kernel[..., 1], 2.0 * bias[1]
        layer.set_weights([kernel, bias])
        gamma, beta, mean, variance = model.get_layer(bn).get_weights()
        gamma[4], variance[4], mean[4], beta[4] = gamma[1], variance[1], 2.0 * mean[1], 2.0 * beta[1]
        model.get_layer(bn).set_weights([gamma, beta, mean, variance])
    return model


def test_refit_rebuilds_the_original_outputs_better_than_the_one_shot_fit(keras, tmp_path):
    from weightkit.compress.merge import merge_by_data

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    model = reloaded(_two_blocks(keras, rng), tmp_path, "two_blocks")
    x = rng.normal(size=(400, 6, 6, 3)).astype("float32")
    original = model.predict(x[300:], verbose=0)
    errors = {}
    for refit in (False, True):
        merged, report = merge_by_data(model, x[:300], ratio=0.5, refit=refit, samples=300)
        assert sorted(layer.neurons_after for layer in report.layers) == [4, 4, 4]
        errors[refit] = float(np.mean((merged.predict(x[300:], verbose=0) - original) ** 2))
    # Measured on the held-out inputs: one-shot 1.33e-3, refit 7.0e-4 (0.52 of it); outputs' mean square 7.8.
    assert errors[True] < 0.75 * errors[False], errors
    assert "sequential refit: 5 probe passes" in report.notes


def test_refit_keeps_a_planted_copy_through_a_residual_block_exact(keras, tmp_path):
    from weightkit.compress.merge import merge_by_data

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    model = reloaded(_residual_cnn(keras, rng), tmp_path, "residual")
    x = rng.normal(size=(260, 5, 5, 3)).astype("float32")
    merged, report = merge_by_data(model, x[:200], max_error=1e-5, layers=["conv2"], refit=True)
    (group,) = report.layers
    assert group.producers == ["conv2", "shortcut"] and group.neurons_after <= 5
    assert all(item["r2"] >= 0.99999 for item in group.removed)
    np.testing.assert_allclose(merged.predict(x[200:], verbose=0), model.predict(x[200:], verbose=0), atol=ATOL,
                               rtol=0)


def test_batchnorm_reestimation_sets_the_merged_models_batch_statistics(keras, tmp_path):
    from weightkit.compress.merge import merge_by_data

    rng = np.random.default_rng(2)
    keras.utils.set_random_seed(2)
    model = reloaded(_residual_cnn(keras, rng), tmp_path, "bn")
    x = rng.normal(size=(300, 5, 5, 3)).astype("float32")
    merged, report = merge_by_data(model, x, ratio=0.5, reestimate_bn=True, samples=300)
    assert "BatchNormalization statistics re-estimated on the calibration sample: 3 layers, 2 passes" in report.notes
    # With every calibration input in one batch, training mode normalizes by exactly these statistics.
    inference = np.asarray(merged(x, training=False))
    batch = np.asarray(merged(x, training=True))
    np.testing.assert_allclose(inference, batch, atol=1e-4, rtol=0)
    (group,) = [layer for layer in report.layers if "conv2" in layer.producers]
    kept = np.setdiff1d(np.arange(6), [item["neuron"] for item in group.removed])
    stale = np.asarray(model.get_layer("bn2").moving_variance)[kept]
    assert np.abs(np.asarray(merged.get_layer("bn2").moving_variance) - stale).max() > 0.1  # they did change


def test_fit_refit_map_undoes_a_drift_and_rebuilds_removed_channels():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2000, 5))
    y = np.column_stack([y, y[:, 0] - y[:, 3] + 1.0])
    drift = np.eye(6)
    drift[1, 2] = 0.3
    x = y @ drift * 0.8 + 0.1  # the merged model mixes channels 1 and 2, scales and shifts all
    fitted = fit_refit_map(x, y, np.array([5]))
    rebuilt = x[:, fitted.keep] @ fitted.beta.T + fitted.shift
    np.testing.assert_allclose(rebuilt, y, atol=1e-4)
    assert fitted.r2.tolist() == pytest.approx([1.0], abs=1e-6) and fitted.error < 1e-8
    chosen = choose_refit_map(x, y, np.array([5]))
    assert not chosen.diagonal and chosen.ridge == 1e-6
    diagonal = choose_refit_map(x, y, np.array([5]), diagonal_only=True)
    assert diagonal.diagonal and diagonal.error > 1e-3  # channel 2's share of channel 1 is not rebuilt


def test_refit_selection_equals_the_one_shot_choice_when_nothing_was_merged():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 8))
    a = np.column_stack([a, a[:, :3] @ rng.normal(size=(3, 4)) + 0.01 * rng.normal(size=(500, 4))])
    weights = rng.normal(size=(12, 5))
    remove, dead = refit_selection([(a, a, weights)], count=5)
    one_shot = plan_group_fit([(a, weights)], count=5)
    assert remove.tolist() == one_shot.remove.tolist() and dead.size == 0


def test_allocation_is_checked_before_anything_is_loaded():
    from weightkit.analysis.errors import WeightkitError
    from weightkit.compress.merge import merge_by_data

    with pytest.raises(WeightkitError) as unknown:
        merge_by_data("missing.keras", None, ratio=0.5, refit=True, allocation="even")
    assert str(unknown.value) == ("Invalid value for allocation. Expected one of ['uniform', 'global']. "
                                  "Received: allocation='even'.")
    with pytest.raises(WeightkitError) as alone:
        merge_by_data("missing.keras", None, ratio=0.5, refit=False, allocation="global")
    assert str(alone.value) == ("allocation='global': only with refit=True and a ratio (it spreads the ratio's "
                                "removals over the groups); pass refit=True, ratio=... or leave allocation='uniform'.")


def test_refit_flags_need_the_data_mode(capsys, tmp_path):
    from weightkit._common import run_cli
    from weightkit.cli import cli

    model = tmp_path / "model.keras"
    model.write_bytes(b"not read")
    status = run_cli(cli, ["merge", str(model), "--ratio", "0.5", "--refit", "-o", str(tmp_path / "out.keras")])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert err.strip() == ("weightkit merge: error: --refit: only with --mode data, which calibrates on DATA; "
                           "add --mode data --data DATA.")
