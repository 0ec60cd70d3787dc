"""A SavedModel is a program: quantize reads its graph before running anything of it (issue 17 item 1).

The hostile SavedModel is written by a helper module in a subprocess-free way: tf.function needs
its source in a file, so the module below is written to ``tmp_path`` and imported from there.
"""

import os
import sys

import pytest

_HOSTILE = '''
import tensorflow as tf


class Writer(tf.Module):
    def __init__(self, target):
        super().__init__()
        self.target = target
        self.scale = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def serve(self, x):
        tf.io.write_file(self.target, "written by the SavedModel")
        return {"y": tf.nn.softmax(x * self.scale)}


def save(directory, target):
    module = Writer(target)
    tf.saved_model.save(module, directory, signatures={"serving_default": module.serve})
'''


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """``(SavedModel folder, the file its serving function writes)``."""
    root = tmp_path_factory.mktemp("hostile_savedmodel")
    (root / "hostile_module.py").write_text(_HOSTILE)
    sys.path.insert(0, str(root))
    try:
        import hostile_module
    finally:
        sys.path.remove(str(root))
    from weightkit.analysis._tf import silenced_stderr

    with silenced_stderr():
        hostile_module.save(str(root / "saved"), str(root / "pwned.txt"))
    return str(root / "saved"), root / "pwned.txt"


def _cli(argv, capsys):
    from weightkit._common import run_cli
    from weightkit.cli import cli

    code = run_cli(cli, argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_scan_finds_the_write_and_nothing_in_a_keras_export(hostile, trained_mlp, tmp_path):
    from weightkit.analysis._tf import silenced_stdout
    from weightkit.compress.quantize import unsafe_ops

    assert [op for op, _ in unsafe_ops(hostile[0])] == ["WriteFile"]
    exported = tmp_path / "keras_export"
    with silenced_stdout():
        trained_mlp[0].export(str(exported), format="tf_saved_model", verbose=False)
    assert unsafe_ops(str(exported)) == []  # SaveV2 / RestoreV2 sit in the saver's own functions only


def test_quantize_refuses_a_savedmodel_that_writes_a_file(hostile, tmp_path, capsys):
    saved, target = hostile
    code, _, stderr = _cli(["quantize", saved, "-o", str(tmp_path / "q"), "--modes", "float32"], capsys)
    assert code == 2
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"weightkit quantize: error: {saved}: the SavedModel's graph runs "
                                                   "op WriteFile in function __inference_serve_")
    assert lines[0].endswith("which is not pure math (it can touch files, the network, processes or Python); a "
                             "SavedModel is a program, so nothing of it was run; pass --unsafe only if you trust "
                             "where it came from.")
    assert not target.exists() and not (tmp_path / "q").exists()


def test_unsafe_runs_it(hostile, tmp_path, capsys):
    saved, target = hostile
    code, _, stderr = _cli(["quantize", saved, "-o", str(tmp_path / "q"), "--modes", "float32", "--unsafe",
                                 "-q"], capsys)
    assert target.exists(), stderr  # the graph ran: that is what --unsafe means
    os.remove(target)
    # The converter has no TFLite op for WriteFile: the run ends in one line, not a traceback.
    assert code == 2 and len(stderr.splitlines()) == 1
    assert "no mode could be converted (float32: ConverterError: 'tf.WriteFile' op is neither" in stderr
