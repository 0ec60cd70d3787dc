"""Terminal rendering of a :class:`weightkit.compress.shrink.ShrinkResult`: the stages and the export."""

from rich.table import Table

__all__ = ["print_shrink_result"]


def print_shrink_result(result, console):
    """One table of the original, the chosen merge and every quantized mode, then the export line.

    Returns
    -------
    list of str
        The result's notes, for the caller to print where its notes go.
    """
    unit = getattr(result, "unit", "accuracy")
    metric = {"accuracy": "acc", "agreement": "agreement", "mae": "MAE"}[unit]
    budget = {"accuracy": "accuracy points", "agreement": "agreement points", "mae": "MAE"}[unit]
    table = Table(title=f"{result.model}: shrink within {result.max_drop:g} {budget} "
                        f"(target {result.target}; splits {', '.join(f'{k} {v}' for k, v in result.splits.items())})")
    for column in ("candidate", "params", "bytes", f"validation {metric}", f"test {metric}", ""):
        table.add_column(column, justify="left" if column in ("candidate", "") else "right")
    kept = [f"stream:{s['kept']}" for s in getattr(result, "stream", {}).get("streams", []) if s["kept"] < s["width"]]
    shown = [c for c in result.candidates if c.stage in ("original", "quantize") or c.key in kept
             or c.key.startswith(f"merge:{result.merged.get('index')}")]
    for candidate in shown:
        table.add_row(candidate.title or candidate.key, f"{candidate.params:,}",
                      f"{candidate.bytes:,}" + ("*" if candidate.estimated else ""),
                      f"{candidate.validation_accuracy:.4f}",
                      "—" if candidate.test_accuracy is None else f"{candidate.test_accuracy:.4f}",
                      "★ exported" if candidate.chosen else "")
    console.print(table)
    export = result.export
    console.print(f"model.tflite: {export['mode']}, {export['bytes']:,} bytes, {export['ratio']:.1f}x smaller than "
                  f"the original's float32 .tflite; test {metric} {export['test_accuracy']:.4f} "
                  f"({export['test_drop_points']:+.{2 if unit != 'mae' else 4}f} "
                  f"{'points' if unit != 'mae' else 'MAE'} {'added' if unit == 'mae' else 'lost'} on data no choice "
                  "read). * 4 bytes per parameter")
    return list(result.notes)
