"""Two runs to one output (issue 29 item 4): every writer's final step is an exclusive rename unless ``--force``,
so of two runs that both found the output free, the later is refused in one line and the earlier's output stays.
"""

import os

import pytest
from refusal_checks import run


def _appeared(path):
    return (f"{path}: appeared while this run was writing it (another run to the same output?); it was left as it is "
            "and nothing was written: choose another path, or pass --force to replace it.")


def _race(count, write):
    """Run ``write(i, ready, turn)`` in ``count`` threads; each result is "wrote" or the refusal's text."""
    import threading

    from weightkit.analysis.errors import WeightkitError

    ready, turn, results = threading.Barrier(count), threading.Lock(), [None] * count

    def racer(i):
        try:
            write(i, ready, turn)
            results[i] = "wrote"
        except WeightkitError as error:
            results[i] = str(error)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _file_writer(path):
    """As merge, fold, analyze --json: check the output first, write it last (the writers take turns finishing)."""
    from weightkit.analysis.files.io import atomic_write_bytes, check_output

    def write(i, ready, turn):
        check_output(path)
        ready.wait()  # every run has found the output free
        with turn:
            atomic_write_bytes(path, f"run {i}".encode())
    return write


def _folder_writer(path):
    """As report, quantize, shrink into an existing empty folder: the check is atomic_directory's own."""
    from weightkit.analysis.files.io import atomic_directory

    def write(i, ready, turn):
        held = False
        try:
            with atomic_directory(path) as folder:
                with open(os.path.join(folder, "index.html"), "w") as handle:
                    handle.write(f"run {i}")
                ready.wait()  # every run is past its check, writing
                turn.acquire()
                held = True
        finally:
            if held:
                turn.release()
    return write


def _set_writer(path):
    """As retrain: OUT.keras and OUT.json renamed together; a refused set takes back what it renamed."""
    from weightkit.analysis.files.io import check_output
    from weightkit.output_sets import OutputSet

    stem = os.path.splitext(path)[0]

    def write(i, ready, turn):
        for output in (path, stem + ".json"):
            check_output(output)
        ready.wait()
        with turn, OutputSet([path, stem + ".json"], journal=f"{stem}.{i}.journal") as outputs:
            for output in (path, stem + ".json"):
                with open(outputs[output], "w") as handle:
                    handle.write(f"run {i}")
            outputs.commit()
    return write


@pytest.mark.parametrize("writer", ["file", "folder", "output set"])
def test_two_runs_racing_to_one_output_one_wins_and_the_others_are_refused(tmp_path, writer):
    path = str(tmp_path / {"file": "m.keras", "folder": "report", "output set": "r.keras"}[writer])
    if writer == "folder":
        os.makedirs(path)  # an empty folder is a free output
    make = {"file": _file_writer, "folder": _folder_writer, "output set": _set_writer}[writer]
    results = _race(4, make(path))
    winner = results.index("wrote")
    assert results[:winner] + results[winner + 1:] == [_appeared(path)] * 3
    written = os.path.join(path, "index.html") if writer == "folder" else path
    assert open(written).read() == f"run {winner}"
    expected = {"file": ["m.keras"], "folder": ["report"],
                "output set": ["r.json", "r.keras", f"r.{winner}.journal"]}[writer]
    assert sorted(os.listdir(tmp_path)) == sorted(expected)  # no temporary, no journal of a refused set
    if writer == "output set":
        assert open(tmp_path / "r.json").read() == f"run {winner}"


_CORPUS_ARGV = {
    "merge": (["merge", "{model}", "-o", "{out}/m.keras"], "m.keras", "load_model_or_exit"),
    "fold": (["fold", "{model}", "-o", "{out}/f.keras"], "f.keras", "load_model_or_exit"),
    "analyze --json": (["analyze", "{model}", "--json", "{out}/a.json"], "a.json", "stored_model_or_exit"),
    "retrain": (["retrain", "{model}", "--data", "{data}", "-o", "{out}/r.keras", "--epochs", "1", "-q"], "r.keras",
                "load_model_or_exit"),
}


@pytest.mark.parametrize("command", list(_CORPUS_ARGV))
def test_an_output_another_run_wrote_meanwhile_is_never_replaced(capsys, monkeypatch, corpus, tmp_path, command):
    """The other run finishes while this one loads the model: after this one's checks, before its write."""
    import importlib

    models, data = corpus
    template, name, loader = _CORPUS_ARGV[command]
    argv = [part.format(model=models["good"], data=data["good"], out=tmp_path) for part in template]
    module = importlib.import_module(f"weightkit.commands.{argv[0]}")
    load = getattr(module, loader)
    rival = tmp_path / name

    def load_while_another_run_finishes(*args, **kwargs):
        rival.write_bytes(b"the other run's output")
        return load(*args, **kwargs)

    monkeypatch.setattr(module, loader, load_while_another_run_finishes)
    status, _, err = run(capsys, argv)
    assert (status, err) == (2, f"weightkit {argv[0]}: error: {_appeared(rival)}\n")
    assert rival.read_bytes() == b"the other run's output"
    left = sorted(os.listdir(tmp_path))
    # retrain keeps its finished epochs: --resume --force writes them without training again.
    assert left == ([".r.keras.retrain", name] if command == "retrain" else [name])
