"""What the filters look for: filter tiles, receptive fields and the top input patches of each filter."""

import os

import numpy as np
import pytest

from weightkit.reports.canvas import save_figure
from weightkit.reports.filters import MAX_FILTERS, filter_tiles_figure, patch_grid_figure, shown_filters
from weightkit.reports.filters_data import cut_patches, receptive_fields, top_inputs

CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=np.float32)
#: (image, row, column) where the cross is planted: the top-left corner of its 3 × 3 window.
PLANTED = [(3, 0, 0), (11, 5, 7), (17, 9, 9), (20, 2, 4), (31, 8, 1), (40, 4, 4), (52, 0, 9), (60, 6, 2)]


def _planted_data(n=64, size=12, seed=0):
    """Faint noise in [0, 0.2), with a bright cross in eight images at known places."""
    x = np.random.default_rng(seed).uniform(0, 0.2, size=(n, size, size, 1)).astype(np.float32)
    for image, row, column in PLANTED:
        x[image, row:row + 3, column:column + 3, 0] = np.maximum(x[image, row:row + 3, column:column + 3, 0], CROSS)
    return x


@pytest.fixture(scope="module")
def cross_model(keras, tmp_path_factory):
    """Conv2D(4, 3) whose filter 2 is the cross (zero-mean), then a pooled head; saved and reloaded."""
    L = keras.layers
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 1)), L.Conv2D(4, 3, activation="relu", name="conv"),
                              L.MaxPooling2D(name="pool"), L.Conv2D(3, 3, padding="same", name="deep"),
                              L.GlobalAveragePooling2D(), L.Dense(2, name="head")], name="cross_net")
    kernel, bias = model.get_layer("conv").get_weights()
    kernel = 0.05 * kernel
    kernel[:, :, 0, 2] = CROSS - CROSS.mean()
    model.get_layer("conv").set_weights([kernel, np.zeros_like(bias)])
    path = tmp_path_factory.mktemp("filters") / "cross.keras"
    model.save(path)
    return keras.models.load_model(path)


def test_top_inputs_of_the_planted_filter_are_the_planted_crosses(cross_model):
    from weightkit.reports.filters_report import FilterFigures

    x = _planted_data()
    figures = FilterFigures(cross_model, x)
    samples, positions, values = figures.top["conv"]
    found = sorted((int(s), *map(int, p)) for s, p in zip(samples[2], positions[2]))
    assert found == sorted(PLANTED)
    patches = cut_patches(x, samples[2:3], positions[2:3], figures.windows["conv"])
    assert patches.shape == (1, 8, 3, 3, 1)
    np.testing.assert_array_equal(patches[0, :, :, :, 0] >= 1.0, np.broadcast_to(CROSS > 0, (8, 3, 3)))
    assert np.all(np.diff(values[2]) <= 0)  # strongest first


def test_receptive_fields_through_valid_conv_pooling_and_same_conv(cross_model):
    from weightkit.analysis.structure.graph import ModelGraph

    graph = ModelGraph(cross_model)
    fields = receptive_fields(graph)
    by_layer = {node.layer.name: fields[node.outputs[0]] for node in graph.nodes}
    assert by_layer["conv"] == ((3, 1, 0), (3, 1, 0))
    assert by_layer["pool"] == ((4, 2, 0), (4, 2, 0))
    assert by_layer["deep"] == ((8, 2, -2), (8, 2, -2))  # 'same' pads one pooled position on each side
    assert by_layer["head"] is None


def test_top_inputs_and_cut_patches_on_arrays():
    activations = np.zeros((5, 4, 4, 2), dtype=np.float32)
    activations[3, 1, 2, 0], activations[1, 0, 0, 0], activations[4, 3, 3, 1] = 5.0, 2.0, 1.0
    samples, positions, values = top_inputs(activations, k=2)
    assert samples[0].tolist() == [3, 1] and positions[0].tolist() == [[1, 2], [0, 0]]
    assert values[0].tolist() == [5.0, 2.0] and samples[1, 0] == 4
    x = np.arange(5 * 6 * 6).reshape(5, 6, 6, 1).astype(np.float32)
    window = ((3, 1, -1), (3, 1, -1))  # a 'same' 3 × 3 convolution: position 0 reaches into the padding
    patch = cut_patches(x, np.array([[2]]), np.array([[[0, 0]]]), window)[0, 0, :, :, 0]
    np.testing.assert_array_equal(patch[1:, 1:], x[2, :2, :2, 0])
    assert patch[0].tolist() == [0, 0, 0] and patch[:, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("rgb, n, c_in", [(True, 10, 3), (False, 80, 5)])
def test_filter_tiles_draw_in_clustered_order_and_sample_above_the_limit(tmp_path, rgb, n, c_in):
    kernel = np.random.default_rng(0).normal(size=(3, 3, c_in, n)).astype(np.float32)
    order = np.arange(n)[::-1]
    shown = shown_filters(order)
    assert len(shown) == min(n, MAX_FILTERS) and shown[0] == n - 1 and shown[-1] == 0
    figure = filter_tiles_figure(kernel, order, [[n - 1, n - 2]], title="filters", rgb=rgb)
    width, height = save_figure(figure, tmp_path / "tiles.png")
    assert width > 300 and height > 100
    assert (tmp_path / "tiles.png").read_bytes()[:4] == b"\x89PNG"


def test_patch_grid_draws_one_row_per_filter(tmp_path):
    patches = np.random.default_rng(0).uniform(size=(3, 8, 5, 5, 3)).astype(np.float32)
    figure = patch_grid_figure(patches, [4, 0, 2], np.ones((3, 8)), title="patches", value_range=(0.0, 1.0))
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels == ["filter 4 (1)", "filter 0 (1)", "filter 2 (1)"]
    save_figure(figure, os.path.join(tmp_path, "patches.png"))


def test_report_with_data_has_filter_tiles_and_patch_grids_on_the_page(cross_model, tmp_path):
    from weightkit.reports import write_report

    out = tmp_path / "report"
    write_report(cross_model, out, data=_planted_data(), samples=64, layers=["conv", "deep"])
    figures = set(os.listdir(out / "figures"))
    page = (out / "index.html").read_text(encoding="utf-8")
    for name in ("001-conv-filters.png", "001-conv-patches.png", "002-deep-filters.png", "002-deep-patches.png"):
        assert name in figures and f'src="figures/{name}"' in page
