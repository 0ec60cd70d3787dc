"""Terminal rendering of a demo journey (:class:`weightkit.demo.journey.Journey` results already measured)."""

from rich.table import Table

__all__ = ["print_journey"]


def print_journey(journey, console):
    """The demo's table: every stage of one model's journey (params, size, accuracy, agreement, redundancy)."""
    table = Table(title=f"{journey.model}: every stage on {journey.test_samples} held-out digits "
                        f"(★ quantized: {journey.quantized_from})")
    for column in ("stage", "params", "file KiB", "accuracy", "agreement", "mean |r|", "groups"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage in journey.stages:
        table.add_row(stage.key + (" ★" if stage.key == journey.quantized_from else ""), f"{stage.params:,}",
                      f"{stage.bytes / 1024:,.1f}", f"{stage.accuracy:.4f}", f"{stage.agreement:.4f}",
                      "—" if stage.mean_abs_r is None else f"{stage.mean_abs_r:.3f}",
                      "—" if stage.groups is None else str(stage.groups))
    console.print(table)
