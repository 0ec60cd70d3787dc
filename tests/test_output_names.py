"""Outputs and their temporaries: long names, stale leftovers of killed runs, two runs to one new output.

The command-line cases use the bad-input corpus's tiny model; the races are staged in process
(the rival output is created while the yielded temporary is being written), which is the window
two real runs share.
"""

import os
import re
import subprocess
import sys

import pytest
from refusal_checks import run

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.io import _HOST, OUTPUT_MARKER, atomic_directory, atomic_path, atomic_write_text, is_weightkit_output


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _no_temporaries(folder):
    return [name for name in os.listdir(folder) if ".part" in name or name.endswith(".old")]


@pytest.mark.parametrize("length", [240, 245, 250])
@pytest.mark.parametrize("command", ["analyze", "merge", "report"])
def test_output_names_of_240_to_250_characters_are_written(capsys, corpus, tmp_path, command, length):
    models, _ = corpus
    name = ("n" * length)[: length - 5] + {"analyze": ".json", "merge": ".keras", "report": "_repo"}[command]
    target = tmp_path / name
    flag = {"analyze": "--json", "merge": "-o", "report": "-o"}[command]
    argv = [command, models["good"], flag, target]
    status, _, err = run(capsys, argv)
    assert status == 0 and "error" not in err, err
    assert target.exists()
    assert _no_temporaries(tmp_path) == []


def test_a_300_character_layer_name_gets_short_figure_names(keras, capsys, tmp_path):
    long = "layer_" + "x" * 294
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="relu", name=long)(inputs)
    keras.Model(inputs, keras.layers.Dense(2, name="out")(hidden)).save(tmp_path / "long.keras")
    status, _, err = run(capsys, ["report", tmp_path / "long.keras", "-o", tmp_path / "report", "--quiet"])
    assert (status, err) == (0, ""), err
    figures = sorted(os.listdir(tmp_path / "report" / "figures"))
    long_ones = [name for name in figures if "xxxx" in name]
    assert len(long_ones) == 4 and all(len(name) <= 120 for name in figures), figures
    assert len({re.sub(r"-(pearson|mad|rows|histogram)\.png$", "", name) for name in long_ones}) == 1
    page = (tmp_path / "report" / "index.html").read_text()
    assert all(f"figures/{name}" in page for name in long_ones)


def test_stale_temporaries_of_dead_runs_are_removed_and_nothing_else(capsys, corpus, tmp_path):
    models, _ = corpus
    dead, alive = _dead_pid(), os.getppid()
    stale_folder = tmp_path / f".report.{_HOST}-{dead}-abcd_123.part"
    stale_folder.mkdir()
    (stale_folder / "index.html").write_text("half")
    stale_old = tmp_path / f".report.{_HOST}-{dead}-zzzzzzzz.old"
    stale_old.mkdir()
    kept = [tmp_path / f".report.{_HOST}-{alive}-abcdefgh.part",  # a live run's
            tmp_path / f".report.other1-{dead}-abcdefgh.part",  # another machine's
            tmp_path / ".report.abcdefgh.part",  # not weightkit's naming
            tmp_path / f".reports.{_HOST}-{dead}-abcdefgh.part",  # another output's
            tmp_path / "thesis.tex"]
    for path in kept:
        path.write_text("mine")
    status, _, err = run(capsys, ["report", models["good"], "-o", tmp_path / "report", "--quiet"])
    assert (status, err) == (0, "")
    assert sorted(os.listdir(tmp_path)) == sorted(["report"] + [path.name for path in kept])
    assert all(path.read_text() == "mine" for path in kept)


def test_a_stale_temporary_file_of_a_killed_merge_is_removed(capsys, corpus, tmp_path):
    models, _ = corpus
    stale = tmp_path / f".m.keras.{_HOST}-{_dead_pid()}-q1w2e3r4.part.keras"
    stale.write_bytes(b"half a model")
    status, _, err = run(capsys, ["merge", models["good"], "-o", tmp_path / "m.keras", "-q"])
    assert (status, err) == (0, ""), err
    assert not stale.exists()
    assert sorted(os.listdir(tmp_path)) == ["m.json", "m.keras"]


def test_a_file_that_appears_during_the_run_is_not_replaced(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(WeightkitError) as info, atomic_path(target) as temporary:
        with open(temporary, "w") as handle:
            handle.write("second")
        target.write_text("first")  # the other run finished first
    assert str(info.value) == (f"{target}: appeared while this run was writing it (another run to the same "
                               "output?); it was left as it is and nothing was written: choose another path, or "
                               "pass --force to replace it.")
    assert target.read_text() == "first"
    assert os.listdir(tmp_path) == ["out.json"]


def test_a_folder_that_appears_filled_during_the_run_is_not_replaced(tmp_path):
    target = tmp_path / "report"
    with pytest.raises(WeightkitError, match="appeared while this run was writing it"), \
            atomic_directory(target) as work:
        (open(os.path.join(work, "index.html"), "w")).close()
        target.mkdir()
        (target / "index.html").write_text("first")
    assert os.listdir(tmp_path) == ["report"]
    assert sorted(os.listdir(target)) == ["index.html"]
    assert (target / "index.html").read_text() == "first"


def test_an_empty_folder_that_appears_during_the_run_is_taken_like_one_there_at_the_start(tmp_path):
    # An empty output folder is accepted when the run starts; one made meanwhile is taken the same way (the final
    # rename onto an empty folder is atomic: a rival that fills it first wins, as in the test above).
    target = tmp_path / "report"
    with atomic_directory(target) as work:
        (open(os.path.join(work, "index.html"), "w")).close()
        target.mkdir()
    assert os.listdir(tmp_path) == ["report"]
    assert "index.html" in os.listdir(target)


def test_an_existing_output_is_still_replaced(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    atomic_write_text(target, "new", force=True)  # the caller was given --force
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_a_file_output_never_replaces_a_folder(tmp_path):
    target = tmp_path / "out.json"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(WeightkitError, match="a file output never replaces a folder"):
        atomic_write_text(target, "{}", force=True)
    assert os.listdir(target) == ["keep"]


# --------------------------------------------------------------------------------------------------
# --force replaces only what weightkit wrote


@pytest.mark.parametrize("command", ["report", "quantize"])
def test_force_never_deletes_a_folder_weightkit_did_not_write(capsys, corpus, tmp_path, monkeypatch, command):
    models, _ = corpus
    (tmp_path / "thesis.tex").write_text("four years")
    (tmp_path / "figures").mkdir()
    monkeypatch.chdir(tmp_path)
    argv = [command, models["good"], "-o", os.getcwd(), "--force"]
    if command == "quantize":
        argv += ["--modes", "float32"]
    status, _, err = run(capsys, argv)
    assert status == 2
    assert err == (f"weightkit {command}: error: {tmp_path}: folder is not empty and weightkit did not write it "
                   f"(no {OUTPUT_MARKER} in it), so it is never replaced, not even with --force; choose another "
                   "output folder or empty it yourself.\n")
    assert sorted(os.listdir(tmp_path)) == ["figures", "thesis.tex"]
    assert (tmp_path / "thesis.tex").read_text() == "four years"


def test_force_replaces_a_folder_weightkit_wrote(capsys, corpus, tmp_path):
    models, _ = corpus
    out = tmp_path / "report"
    for extra in ([], ["--force"]):
        status, _, err = run(capsys, ["report", models["good"], "-o", out, "--quiet", *extra])
        assert (status, err) == (0, "")
        assert is_weightkit_output(out)
    assert sorted(os.listdir(tmp_path)) == ["report"]


def test_a_folder_that_became_foreign_during_the_run_is_not_replaced(tmp_path):
    target = tmp_path / "report"
    target.mkdir()
    (target / OUTPUT_MARKER).write_text("")
    with pytest.raises(WeightkitError, match="weightkit did not write it"), \
            atomic_directory(target, force=True) as work:
        (open(os.path.join(work, "index.html"), "w")).close()
        os.unlink(target / OUTPUT_MARKER)
        (target / "notes.txt").write_text("mine")
    assert sorted(os.listdir(target)) == ["notes.txt"]
    assert os.listdir(tmp_path) == ["report"]
