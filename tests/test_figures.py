"""Figure functions of the HTML report, on small matrices (Agg canvas, no pyplot figures left open)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PatchCollection
from PIL import Image
from scipy.cluster.hierarchy import dendrogram

from weightkit.analysis import cluster_linkage, cluster_order, find_groups, mad_matrix, pearson_matrix
from weightkit.reports.canvas import save_figure
from weightkit.reports.charts import histogram_figure, overview_figure
from weightkit.reports.figures import block_means, dendrogram_segments, group_spans, similarity_figure, weight_rows_figure


def planted_rows(rng, n=16, fan_in=64, shuffle=True):
    """Random rows with near-copies planted: groups {0, 4}, {1, 6, 7}, {2, 14}, {12, 13} before shuffling.

    Returns (rows, expected groups in the returned indexing).
    """
    rows = rng.normal(size=(n, fan_in))
    for source, copy in ((0, 4), (1, 6), (1, 7), (2, 14), (12, 13)):
        rows[copy] = rows[source] + 0.03 * rng.normal(size=fan_in)
    groups = [[0, 4], [1, 6, 7], [2, 14], [12, 13]]
    if shuffle:
        permutation = rng.permutation(n)  # new index of old neuron i is where[i]
        where = np.argsort(permutation)
        rows = rows[permutation]
        groups = sorted((sorted(int(where[i]) for i in group) for group in groups), key=lambda g: g[0])
    return rows.astype(np.float32), groups


def analyzed(rows, metric="pearson", threshold=None):
    pearson, mad = pearson_matrix(rows), mad_matrix(rows)
    chosen = pearson if metric == "pearson" else mad
    Z = cluster_linkage(chosen, metric)
    return pearson, mad, Z, cluster_order(Z, len(rows)), find_groups(chosen, metric, threshold, Z=Z)


@pytest.fixture(autouse=True)
def no_open_figures():
    yield
    assert plt.get_fignums() == [], "a figure was left registered with pyplot"


@pytest.mark.parametrize("seed", range(5))
def test_planted_group_is_contiguous_in_the_clustered_order(seed):
    rows, expected = planted_rows(np.random.default_rng(seed))
    _, _, _, order, groups = analyzed(rows)
    assert groups == expected
    position = np.argsort(order)
    for group, runs in zip(groups, group_spans(groups, order)):
        places = sorted(position[group])
        assert places == list(range(places[0], places[0] + len(group)))
        assert runs == [(places[0], places[-1] + 1)]


@pytest.mark.parametrize("metric,threshold", [("pearson", 0.2), ("pearson", 0.05), ("mad", 0.9), ("mad", 0.95)])
@pytest.mark.parametrize("seed", range(4))
def test_every_group_is_one_run_of_the_order_of_its_tree(metric, threshold, seed):
    # Loose thresholds make many groups of varied sizes: each is one subtree, so one run.
    rows = np.random.default_rng(seed).normal(size=(60, 12)).astype(np.float32)
    *_, order, groups = analyzed(rows, metric, threshold)
    assert sum(len(g) for g in groups) > 10
    assert all(len(runs) == 1 for runs in group_spans(groups, order))


def test_group_spans_reports_a_split_group_as_two_runs():
    assert group_spans([[0, 3, 1]], np.array([0, 1, 2, 3])) == [[(0, 2), (3, 4)]]


def test_block_means_below_the_cap_is_the_reordered_matrix(rng):
    matrix = rng.normal(size=(10, 10)).astype(np.float32)
    order = rng.permutation(10)
    image, block = block_means(matrix, order, cap=10)
    assert block == 1
    np.testing.assert_array_equal(image, matrix[np.ix_(order, order)])


def test_block_means_above_the_cap_averages_blocks_in_clustered_order(rng):
    matrix = rng.normal(size=(11, 11))
    order = rng.permutation(11)
    image, block = block_means(matrix, order, cap=4)
    assert block == 3 and image.shape == (4, 4)
    reordered = matrix[np.ix_(order, order)]
    for i in range(4):
        for j in range(4):
            expected = reordered[3 * i:3 * i + 3, 3 * j:3 * j + 3].mean()  # the last block has 2 neurons
            assert image[i, j] == pytest.approx(expected, rel=1e-5)  # float32 output


def test_dendrogram_segments_match_scipy(rng):
    rows = rng.normal(size=(25, 8))
    Z = cluster_linkage(pearson_matrix(rows), "pearson")
    ours = dendrogram_segments(Z, 25)
    reference = dendrogram(Z, no_plot=True)
    assert reference["leaves"] == list(cluster_order(Z, 25))
    # scipy puts leaf i at x = 5 + 10 i; links are listed in a different order.
    theirs = {tuple(np.round(np.c_[(np.array(x) - 5) / 10, y].ravel(), 9))
              for x, y in zip(reference["icoord"], reference["dcoord"])}
    assert {tuple(np.round(segment.ravel(), 9)) for segment in ours} == theirs


def axes_named(figure, label):
    (axes,) = [a for a in figure.axes if a.get_label() == label]
    return axes


def outline_count(axes):
    return sum(len(c.get_paths()) for c in axes.collections if isinstance(c, PatchCollection))


@pytest.mark.parametrize("metric", ["pearson", "mad"])
def test_similarity_figure_shows_groups_ticks_and_labelled_colorbar(metric, rng):
    rows, _ = planted_rows(rng)
    pearson, mad, Z, order, groups = analyzed(rows)
    figure = similarity_figure(pearson if metric == "pearson" else mad, order, Z, groups, metric=metric,
                               title="dense: x", cut=0.1, tree_label="1 − r", group_note="4 groups")
    heatmap = axes_named(figure, "heatmap")
    image = heatmap.get_images()[0]
    if metric == "pearson":
        assert image.get_clim() == (-1.0, 1.0) and image.get_cmap().name == "RdBu_r"
        assert axes_named(figure, "colorbar").get_ylabel().startswith("Pearson r")
    else:
        assert image.get_clim()[0] == 0.0 and image.get_cmap().name == "cividis"
        assert axes_named(figure, "colorbar").get_ylabel().startswith("MAD")
    assert outline_count(heatmap) == len(groups) == 4
    assert [t.get_text() for t in heatmap.get_yticklabels()] == [str(i) for i in order]
    assert "mean of a" not in figure.texts[0].get_text()
    save_figure(figure, "/dev/null")


def test_similarity_figure_above_the_cap_says_it_shows_block_means(rng):
    rows, _ = planted_rows(rng, n=40)
    pearson, _, Z, order, groups = analyzed(rows)
    figure = similarity_figure(pearson, order, Z, groups, metric="pearson", title="big", cap=16)
    heatmap = axes_named(figure, "heatmap")
    assert heatmap.get_images()[0].get_array().shape == (14, 14)
    assert "40 neurons: each pixel is the mean of a 3×3 block" in figure.texts[0].get_text()
    assert heatmap.get_yticklabels()[1].get_text() == str(order[3])
    assert len(axes_named(figure, "dendrogram").collections[0].get_segments()) == 39
    save_figure(figure, "/dev/null")


def test_weight_rows_figure_aggregates_rows_and_samples_columns(rng):
    rows, _ = planted_rows(rng, n=20, fan_in=50)
    _, _, Z, order, groups = analyzed(rows)
    figure = weight_rows_figure(rows, order, groups, title="w", row_cap=10, column_cap=20)
    heatmap = axes_named(figure, "heatmap")
    image = heatmap.get_images()[0].get_array()
    assert image.shape == (10, 17)
    np.testing.assert_allclose(image[0], rows[order[:2]][:, ::3].mean(axis=0), rtol=1e-5)
    assert heatmap.get_xlabel() == "input index (every 3rd of 50 shown)"
    assert "20 × 50 weights; rows: means of 2 neighbouring neurons; columns: every 3rd input" in \
        figure.texts[0].get_text()
    assert axes_named(figure, "colorbar").get_ylabel().startswith("weight")
    assert outline_count(heatmap) == len(groups)
    save_figure(figure, "/dev/null")


@pytest.mark.parametrize("metric", ["pearson", "mad"])
def test_histogram_marks_the_threshold_of_the_grouping_metric(metric, rng):
    rows, _ = planted_rows(rng)
    pearson, mad, *_ = analyzed(rows)
    cut = 0.05
    figure = histogram_figure(pearson, mad, metric=metric, title="h", r_cut=0.9, mad_cut=cut)
    left, right = figure.axes
    marked, plain = (left, right) if metric == "pearson" else (right, left)
    assert len(marked.get_lines()) == 1 and len(plain.get_lines()) == 0
    assert marked.get_lines()[0].get_xdata()[0] == (0.9 if metric == "pearson" else cut)
    assert "not used for grouping" in plain.get_title()
    assert sum(p.get_height() for p in left.patches) == 16 * 15 // 2
    save_figure(figure, "/dev/null")


def test_overview_figure_has_a_bar_per_layer_and_save_writes_the_stated_size(tmp_path):
    figure = overview_figure(["a", "b/part", "c"], [64, 10, 3], [3, 0, 1], [195, 0, 7])
    left, right = figure.axes
    assert [p.get_width() for p in left.patches] == [3, 0, 1]
    assert [p.get_width() for p in right.patches] == [195, 0, 7]
    path = tmp_path / "overview.png"
    size = save_figure(figure, path)
    with Image.open(path) as image:
        assert image.size == size
