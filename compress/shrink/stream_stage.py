"""Shrink's second stage: the narrowest residual stream within its share of the budget.

A transformer's residual stream sets the width of every block's input and output: merging heads and FFN
neurons leaves it whole (:mod:`weightkit.compress.merge.planning.plan` stops at its joins). This stage turns each
stream that can be sliced (:func:`weightkit.compress.stream.find.find_streams`) to its principal directions on
the calibration inputs and keeps the fewest of them whose model, fine-tuned by distillation where it lost more
than half the budget (as the search's probes), stays within :attr:`ShrinkOptions.stream_budget
<weightkit.compress.shrink.options.ShrinkOptions.stream_budget>` on the validation split: a bisection over
:data:`STREAM_FRACTIONS` of its width, at most ``max_probes`` models per stream. The merges then start from the
sliced model, and a merge's drop is read against the sliced model where that scores better than the original on
validation (``run.start_drop`` < 0): what the sliced model seems to gain there (a fine-tune can) is no credit for
the merges to spend, since the split's few hundred samples cannot vouch for it.

A probe's fine-tune keeps the epoch of the lowest divergence from the original (as every fine-tune of shrink:
:meth:`~weightkit.compress.shrink.run.ShrinkRun.tune`), not of the best validation accuracy, so the budget read
after it on the same split is not biased upwards by the choice of the epoch.
"""

from weightkit.compress.shrink.result import FLOAT_BYTES, Candidate
from weightkit.compress.shrink.search import kept_scores, scored_probe
from weightkit.compress.shrink.stages import run_stage
from weightkit.compress.stream import find_stream, find_streams, sliced_model, stream_basis

__all__ = ["STREAM_FRACTIONS", "stream_stage"]

#: The shares of a stream's channels the bisection tries to keep, widest first. Not below a quarter: on the ViTs of the
#: benchmarks a stream cut to an eighth passed the validation half and then, merged, lost 5 points (width 64, seed 0)
#: and 12 (width 96, seed 2) on the test half (2026-12-07).
STREAM_FRACTIONS = (0.75, 0.625, 0.5, 0.375, 0.25)


def _widths(width):
    """The widths tried for a stream of ``width`` channels: the original first, then narrower, each once."""
    narrower = [max(1, round(f * width)) for f in STREAM_FRACTIONS if round(f * width) < width]
    return list(dict.fromkeys([width] + narrower))


def _slice_one(run, model, joins, tune):
    """Bisect the widths of the stream made by ``joins`` in ``model``: ``(model, record)``."""
    options = run.options
    stream = find_stream(model, joins)
    basis = stream_basis(model, stream, run.splits.x_calibration)
    widths = _widths(stream.width)
    record = {"joins": joins, "width": stream.width, "kept": stream.width, "probes": [],
              "energy": {str(w): round(basis.kept(w), 6) for w in widths}}
    chosen, low, high = model, 0, len(widths) - 1
    while low < high and len(record["probes"]) < options.max_probes:
        middle = (low + high + 1) // 2
        sliced = sliced_model(model, stream, basis, widths[middle])
        probe = {"width": widths[middle], "params": int(sliced.count_params())}
        # Fine-tuned where it lost more than half the stream's budget (scored_probe halves its max_drop).
        sliced, scores = scored_probe(sliced, run.score, tune=tune, fine_tune=options.fine_tune,
                                      max_drop=options.stream_budget)
        probe.update(scores, ok=scores["drop"] <= options.stream_budget)
        record["probes"].append(probe)
        if probe["ok"]:
            low, chosen = middle, sliced
            record.update(kept=widths[middle], drop=scores["drop"])
        else:
            high = middle - 1
    return chosen, record


def stream_stage(run):
    """The model the merges start from (also set as ``run.start``): the original with each sliceable stream
    sliced, or the original.

    Fills ``run.result.stream`` (``streams``: per stream its joins, width, width kept, each probe; ``left``:
    the streams left alone, with the reason) and adds a candidate per probe.
    """
    options = run.options

    def compute():
        streams = find_streams(run.original)
        left = [{"joins": s.joins, "reason": s.problem} for s in streams if s.problem]
        model, records = run.original, []
        if options.stream:
            for stream in [s for s in streams if s.problem is None]:
                model, record = _slice_one(run, model, stream.joins, run.tune())
                records.append(record)
        sliced = any(r["kept"] < r["width"] for r in records)
        run.sliced = model if sliced else None
        return {"streams": records, "left": left}, ({"sliced": model} if sliced else None)

    stored = run_stage(run, "stream", "stream: slicing the residual stream", compute)
    run.result.stream = {k: v for k, v in stored.items() if k != "seconds"}
    for record in run.result.stream["streams"]:
        for probe in record["probes"]:
            scores = kept_scores(probe)
            run.result.candidates.append(Candidate(
                f"stream:{probe['width']}", "stream", "keras", probe["params"], probe["params"] * FLOAT_BYTES,
                run.judge.metric(scores), scores.get("test_accuracy"), scores.get("agreement"), estimated=True,
                within_budget=probe["ok"],
                title=f"residual stream {record['width']} -> {probe['width']} channels"
                      + (", fine-tuned" if probe["after"] is not None else "")))
    sliced = [r for r in run.result.stream["streams"] if r["kept"] < r["width"]]
    if not sliced:
        run.start = run.original
    else:
        run.start = run.sliced if run.sliced is not None else run.checkpoint.model("sliced")
        run.start_drop = float(sliced[-1]["drop"])
    return run.start
