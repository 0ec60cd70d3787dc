"""What weightkit 0.1 (commit 1dbf638, before issue 27) made of the zoo's ViT form at several widths: the baseline
the transformers issue measured ("``shrink`` reaches only 4.2x within 1 point"), reproduced to find its subject.

For each width the ViT is trained with today's zoo (``tests/zoo_transformers.vit_digits``, 12 epochs, saved and
reloaded), and 0.1's ``compress.shrink.shrink_model(max_drop=1, seed=0)`` runs on the saved file in a subprocess
whose import path is a checkout of 0.1 (0.1 installs ``analysis`` and ``compress`` as top-level packages): it
never touches attention and cannot convert int8 (the converter left LayerNormalization's NEG in float), so it
exports dynamic or float16. Printed per width: parameters, 0.1's float32 ``.tflite`` bytes, the export's mode,
bytes and ratio, and its test accuracy against the original's.

Run::

    git worktree add /tmp/weightkit-0.1 1dbf638
    python benchmarks/bench_v01_shrink.py --tree /tmp/weightkit-0.1 --widths 32 48 64 96 128
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.zoo, from the repository

#: Run in the subprocess, on 0.1's import path: ``argv = [tree, model.keras, data.npz]``, prints one JSON line.
_OLD_SHRINK = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from analysis.data import Dataset
from compress.shrink import shrink_model
d = np.load(sys.argv[3], allow_pickle=False)
data = Dataset(d["x_train"], d["y_train"], d["x_test"], d["y_test"], "digits", "classification")
result = shrink_model(sys.argv[2], data, max_drop=1.0, seed=0).result
print("RESULT " + json.dumps({"original": result.original, "export": result.export}, default=float))
"""


def old_shrink(tree, model_path, data_path):
    """0.1's ``shrink_model`` result (``original`` and ``export`` dicts) on a saved model."""
    done = subprocess.run([sys.executable, "-c", _OLD_SHRINK, tree, model_path, data_path], capture_output=True,
                          text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"0.1's shrink failed on {model_path}:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", required=True, help="a checkout of weightkit 0.1 (git worktree add PATH 1dbf638)")
    parser.add_argument("--widths", nargs="+", default=["32", "48", "64", "96", "128"], metavar="W[xK]")
    parser.add_argument("--seed", type=int, default=0, help="training seed of the ViTs")
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.tree, "compress", "shrink", "pipeline.py")):
        raise SystemExit(f"--tree {args.tree}: not a checkout of weightkit 0.1 (no compress/shrink/pipeline.py)")

    import numpy as np

    from benchmarks.bench_transformers import vit_at_width
    from tests.zoo_transformers import digits_images, vit_digits

    data = digits_images()
    print("| subject | parameters | 0.1 float32 .tflite bytes | 0.1 shrink: mode | bytes | x smaller | test accuracy "
          "before | after |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-v01-") as folder:
        data_path = os.path.join(folder, "digits.npz")
        np.savez(data_path, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
        for spec in args.widths:
            (label, _, epochs, _), options = vit_at_width(spec)
            model = vit_digits(folder, epochs=epochs, seed=args.seed, **options)
            path = os.path.join(folder, f"{options['name']}.keras")
            model.save(path)
            result = old_shrink(args.tree, path, data_path)
            original, export = result["original"], result["export"]
            print(f"| {label} | {model.count_params():,} | {original['float32_tflite_bytes']:,} | {export['mode']} | "
                  f"{export['bytes']:,} | {export['ratio']:.2f} | {original['test_accuracy']:.4f} | "
                  f"{export['test_accuracy']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
