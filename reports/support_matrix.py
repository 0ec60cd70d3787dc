"""The README's table of supported layer types, generated from the layer registry.

Run ``python -m weightkit.reports.support_matrix`` to print it; a test checks the README against it.
"""

from weightkit.analysis.kinds.layers import support_matrix

__all__ = ["support_matrix_markdown"]

_COLUMNS = (("layer", "layer class"), ("analyze", "neuron-row entries"), ("activations", "activations probed"),
            ("decorrelate", "decorrelation penalty on"), ("merge", "merged"))


def support_matrix_markdown():
    """The support matrix as a Markdown table (one row per layer class with neurons)."""
    lines = ["| " + " | ".join(title for _, title in _COLUMNS) + " |",
             "|" + "---|" * len(_COLUMNS)]
    for row in support_matrix():
        cells = [f"`{row['layer']}`"] + [row[key] for key, _ in _COLUMNS[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(support_matrix_markdown())
