"""``shrink --max-drop 1`` on the test zoo's transformers: the exported .tflite against the original's float32
.tflite, and where the exported bytes go (issue 27, "Tests and benchmark": at least 12x smaller within 1 point on
the ViT).

Subjects as in ``bench_transformers.py`` (the test zoo's ViT on digits and text classifier, trained, saved and
reloaded in a temporary folder of this run). For each: :func:`weightkit.compress.shrink.shrink_model`
(``max_drop=1``, as ``weightkit shrink --max-drop 1``, its own test split), the original's float32 .tflite bytes
against the exported .tflite, the ratio, the test accuracies, and the export's bytes split with
``tensorflow.lite.tools.flatbuffer_utils`` into constant buffers (the weights) and everything else (operators,
tensors, quantization parameters, metadata).

Each row also gives the stream stage (:mod:`weightkit.compress.shrink.stream_stage`, on by default): the
residual stream's width before -> kept (``—`` when no stream was sliced) and the stage's seconds; ``--no-stream``
turns the stage off (``shrink_model(..., stream=False)``) for a same-run comparison.

``--wide`` adds a wider ViT of the same form (model dimension 128, 4 heads of key_dim 32, FFN 256; about 280k
parameters), where the weights rather than the graph dominate the file, as in the ViTs people train.

Run: ``python benchmarks/bench_transformers_shrink.py`` (``--quick``: fewer epochs, 5 fine-tune epochs, 2 probes;
``--only-wide``: the wide ViT alone; ``--modes float32,dynamic,...``: the quantization modes the export is chosen
from, each one's bytes and drop printed; ``--widths 32 64 96``: the zoo's ViT form at these widths; ``--seed 1``:
another training seed; ``--no-stream``: without the stream stage).
"""

import argparse
import datetime
import os
import platform
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.zoo, from the repository

from benchmarks.bench_transformers import _timed, trained_subjects  # noqa: E402


def flatbuffer_parts(blob):
    """``(constant buffer bytes, every other byte, operators)`` of a ``.tflite``: weights against graph, quantization
    parameters and metadata."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(blob))
    weights = sum(0 if buffer.data is None else len(buffer.data) for buffer in model.buffers)
    return weights, len(blob) - weights, sum(len(graph.operators) for graph in model.subgraphs)


def stream_widths(stream):
    """``"64 -> 16"`` per sliced residual stream of ``outcome.result.stream`` (``, `` between several), or ``—``."""
    sliced = [f"{r['width']} -> {r['kept']}" for r in stream.get("streams", []) if r["kept"] < r["width"]]
    return ", ".join(sliced) or "—"


def probe_scores(probe):
    """The scores a stream probe was judged by: after its fine-tune where that was kept, else before (as
    ``stream_stage`` reads them)."""
    after = probe.get("after")
    return after if after is not None and probe["drop"] == after["drop"] else probe["before"]


def shrink_subject(label, model, data, args):
    """``(subject, original float32 .tflite bytes, exported mode, bytes, x smaller, test accuracy of the original
    and the export, test drop in points, validation drop in points, stream width -> kept, stream stage seconds,
    parameters after, export parts, seconds)`` of ``shrink_model(max_drop=args.max_drop)``."""
    from weightkit.compress.shrink import shrink_model

    options = {"fine_tune_epochs": 5, "max_probes": 2} if args.quick else {}
    if args.no_stream:
        options["stream"] = False
    if args.modes:
        options["modes"] = args.modes.split(",")
    outcome, seconds = _timed(lambda: shrink_model(model, data, max_drop=args.max_drop, seed=0, **options))
    original, export = outcome.result.original, outcome.result.export
    print("  " + "; ".join(f"{mode}: {row['bytes']:,} bytes, validation drop {row['drop']:.3g}, test accuracy "
                           f"{row['test_accuracy']:.4f}" for mode, row in outcome.result.quantized["modes"].items()))
    stream = outcome.result.stream
    for record in stream.get("streams", []):
        print(f"  stream {record['width']} -> {record['kept']}: probes " + ", ".join(
            f"{p['width']} ({p['params']:,} parameters, validation drop {p['drop']:.3g}, "
            f"{'ok' if p['ok'] else 'over'}, test accuracy {probe_scores(p).get('test_accuracy', float('nan')):.4f})"
            for p in record["probes"]))
    for record in stream.get("left", []):
        print(f"  stream left alone: {record['reason']}")
    validation_drop = 100 * (original["validation_accuracy"] - export["validation_accuracy"])
    return (label, original["float32_tflite_bytes"], export["mode"], export["bytes"],
            original["float32_tflite_bytes"] / export["bytes"], original["test_accuracy"], export["test_accuracy"],
            export["test_drop_points"], validation_drop, stream_widths(stream),
            outcome.result.stages.get("stream", 0.0), outcome.model.count_params(),
            flatbuffer_parts(outcome.tflite), seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs, 5 fine-tune epochs and 2 probes")
    parser.add_argument("--max-drop", type=float, default=1.0)
    parser.add_argument("--wide", action="store_true", help="add a wider ViT (width 128, key_dim 32)")
    parser.add_argument("--only-wide", action="store_true", help="the wider ViT alone")
    parser.add_argument("--seed", type=int, default=0, help="training seed of the subjects (initial weights, order)")
    parser.add_argument("--widths", nargs="+", metavar="W[xK]",
                        help="instead: the zoo's ViT form at these widths (4 heads of key_dim W/4, or K)")
    parser.add_argument("--no-stream", action="store_true",
                        help="without the stream stage (shrink_model(stream=False))")
    parser.add_argument("--modes", help="comma-separated quantization modes of shrink_model (default: DEFAULT_MODES)")
    args = parser.parse_args()

    from tests.zoo_transformers import TRANSFORMER_ZOO  # noqa: F401 (fail before any training)
    from weightkit.compress.shrink import shrink_model  # noqa: F401 (fail before any training)

    load = os.getloadavg()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    print(f"# shrink --max-drop {args.max_drop:g} on the zoo's transformers ({stamp} UTC, {platform.machine()}, "
          f"{os.cpu_count()} cores, load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
          f"{', --quick' if args.quick else ''}{', --no-stream' if args.no_stream else ''}, "
          f"training seed {args.seed})\n", flush=True)
    shrunk, trained = [], []
    with tempfile.TemporaryDirectory(prefix="bench-transformers-shrink-") as folder:
        for label, model, data in trained_subjects(folder, args, trained):
            shrunk.append(shrink_subject(label, model, data, args))
            print("  " + " | ".join(map(str, shrunk[-1])), flush=True)
    print(f"\n| subject | seed | float32 .tflite bytes | shrink --max-drop {args.max_drop:g}: mode | bytes | "
          "x smaller | test accuracy before | after | test drop (points) | validation drop (points) | "
          "stream width -> kept | stream stage s | parameters after | export: weight buffers / other bytes / ops | "
          "seconds |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for (label, before, mode, after, ratio, acc0, acc1, test_drop, validation_drop, widths, stream_seconds, params,
         (weights, other, ops), seconds) in shrunk:
        print(f"| {label} | {args.seed} | {before:,} | {mode} | {after:,} | {ratio:.1f} | {acc0:.4f} | {acc1:.4f} | "
              f"{test_drop:.2f} | {validation_drop:.2f} | {widths} | {stream_seconds:.0f} | {params:,} | "
              f"{weights:,} / {other:,} / {ops} | {seconds:.0f} |")
    print("\n" + "; ".join(trained))
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")


if __name__ == "__main__":
    main()
