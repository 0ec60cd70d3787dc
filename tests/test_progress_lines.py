"""Long runs speak in a log (stderr not a terminal), and say the budget the user set (issue 29 item 15)."""

import time

import pytest


def test_log_lines_come_at_least_every_interval_and_never_right_after_a_step():
    from weightkit.console.quantize_progress import LogProgress

    stamps = []
    with LogProgress(lambda line: stamps.append((time.monotonic(), line)), interval=0.2) as progress:
        progress(2, 4, "search: merging path step 1 of 3")
        time.sleep(0.75)
    times = [t for t, _ in stamps]
    assert stamps[0][1].startswith("search: merging path step 1 of 3 (3/4) after ")
    assert all(line.startswith("still search: merging path step 1 of 3: ") for _, line in stamps[1:])
    assert len(stamps) >= 3
    # 0.2 s interval, polled every 0.04 s: never a line sooner than the interval (later only on a busy machine)
    assert all(0.19 <= b - a <= 1.0 for a, b in zip(times, times[1:])), [b - a for a, b in zip(times, times[1:])]


@pytest.fixture(scope="module")
def digits_model(keras, tmp_path_factory):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="out")(hidden))
    path = tmp_path_factory.mktemp("digits") / "mlp.keras"
    model.save(path)
    return str(path)


def test_shrink_writes_progress_lines_when_stderr_is_not_a_terminal(digits_model, tmp_path, capsys, monkeypatch):
    """Its search stage (40-50 s on the demo's MLP) used to print nothing between its stage lines in a log."""
    import weightkit.compress.shrink as shrink_package
    from weightkit._common import run_cli
    from weightkit.analysis.errors import WeightkitError
    from weightkit.cli import cli

    def fake_shrink(model, dataset, *, progress, **options):
        progress(2, 4, "search: merging path step 1 of 3")
        raise WeightkitError("stopped by the test")

    monkeypatch.setattr(shrink_package, "shrink_model", fake_shrink)
    capsys.readouterr()
    status = run_cli(cli, ["shrink", digits_model, "--data", "sklearn:digits", "-o", str(tmp_path / "out")])
    lines = capsys.readouterr().err.splitlines()
    assert status == 2
    assert lines[1].startswith("weightkit: search: merging path step 1 of 3 (3/4) after ")
    assert lines[-1] == "weightkit shrink: error: stopped by the test"


@pytest.mark.parametrize("drop, within, expected", [
    (-0.61111, True, "smallest model (6,064 bytes) whose drop against the original (-0.61 points) is within "
                     "--max-drop 1 accuracy points"),
    (1.25, False, "no mode within --max-drop 1 accuracy points; exported the one with the smallest drop (1.25 "
                  "points, 6,064 bytes)"),
])
def test_shrink_names_the_budget_the_user_set_not_what_merging_left(drop, within, expected):
    """The demo's page said 'within --max-drop 2.11111', a budget nobody set (1 point, after a merge that gained);
    the export's drop is now measured against the original, so the reason names the user's budget itself."""
    from weightkit.compress.shrink.export import export_reason

    assert export_reason({"bytes": 6064, "drop": drop}, within, 1.0, "size", "accuracy") == expected
