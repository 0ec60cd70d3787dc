"""Time and memory of `weightkit report` on keras.applications.ResNet50(weights=None).

Prints the wall and CPU time of the whole report, the resident memory after each layer (to show
it does not grow with depth) and the peak. Not part of the test suite: it takes minutes.

    python benchmarks/bench_report.py [--model resnet50|mobilenetv2] [--out DIR]
"""

import argparse
import os
import resource
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def rss_mib():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["resnet50", "mobilenetv2"], default="resnet50")
    parser.add_argument("--out", default=None, help="report folder (default: a temporary one, removed)")
    args = parser.parse_args()

    from weightkit.analysis._tf import import_keras
    from weightkit.reports.report import write_report

    keras = import_keras()
    build = {"resnet50": keras.applications.ResNet50, "mobilenetv2": keras.applications.MobileNetV2}[args.model]
    model = build(weights=None)
    scratch = tempfile.mkdtemp(prefix="bench_report.")
    out = args.out or os.path.join(scratch, "report")
    samples = []

    def progress(done, total, name):
        samples.append((done, total, name, rss_mib(), time.perf_counter()))

    before = rss_mib()
    wall, cpu = time.perf_counter(), time.process_time()
    result = write_report(model, out, progress=progress, force=True, path=f"keras.applications.{args.model}")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    figures = len(os.listdir(os.path.join(out, "figures")))
    size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(out) for f in files)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model: {args.model}, {model.count_params():,} parameters, {len(result.layers)} analyzed entries, "
          f"{len(result.skipped)} skipped")
    print(f"report: {figures} figures, {size / 2**20:.1f} MiB on disk")
    print(f"time: wall {wall:.1f} s, CPU {cpu:.1f} s (load average now {os.getloadavg()[0]:.1f})")
    print(f"memory: RSS before {before:.0f} MiB, peak {peak:.0f} MiB")
    print("RSS at the start of each layer (MiB):")
    step = max(1, len(samples) // 12)
    for done, total, name, rss, _ in samples[::step] + samples[-1:]:
        print(f"  {done:3d}/{total} {name:32s} {rss:7.0f}")
    quarter = max(1, len(samples) // 4)
    first, last = samples[quarter][3], samples[-1][3]
    print(f"RSS after a quarter of the layers {first:.0f} MiB, at the end {last:.0f} MiB "
          f"(growth {last - first:+.0f} MiB)")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
