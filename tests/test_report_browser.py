"""The report in a real headless Chromium: it loads from disk, every image decodes, nothing is fetched
from the network. A screenshot is saved for a person to look at."""

import os
import shutil

import numpy as np
import pytest
from browser import CHROMIUM, visit

pytestmark = pytest.mark.browser

#: Set to a folder to keep copies of the screenshots for a person to look at; otherwise they stay in
#: the test's temporary folder (pytest keeps the last three runs' folders).
SCREENSHOT_DIR = os.environ.get("WEIGHTKIT_SCREENSHOT_DIR")


def build_planted_model(keras, seed=0):
    """A small untrained conv net whose Dense layer "planted" has near-copies of some neurons."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(6, 3, name="conv"),
                              keras.layers.BatchNormalization(name="norm"), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(12, name="planted"), keras.layers.Dense(4, name="out")],
                             name="planted_net")
    kernel, bias = model.get_layer("planted").get_weights()
    rng = np.random.default_rng(seed)
    for source, copy in ((0, 4), (1, 6), (1, 7), (2, 11)):
        kernel[:, copy] = kernel[:, source] + 0.02 * np.std(kernel) * rng.normal(size=kernel.shape[0])
    model.get_layer("planted").set_weights([kernel, bias])
    return model


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (install Debian's `chromium`; .ci/run does)")
def test_report_opens_offline_in_headless_chromium(keras, tmp_path):
    from weightkit.reports import write_report

    out = tmp_path / "report"
    x = np.random.default_rng(0).uniform(size=(64, 8, 8, 1)).astype("float32")
    write_report(build_planted_model(keras), out, path="planted.keras", data=x, samples=64)
    figures = sorted(os.listdir(out / "figures"))
    assert "001-conv-filters.png" in figures and "001-conv-patches.png" in figures
    expected_images = len(figures)
    screenshot = tmp_path / "report_screenshot.png"

    def layer_screenshot(page):
        page.evaluate("document.getElementById('layer-planted').scrollIntoView()")
        page.screenshot(path=str(tmp_path / "report_screenshot_layer.png"))

    seen = visit(out / "index.html", screenshot=screenshot, after_load=layer_screenshot,
                 evaluate={"rows": "document.querySelectorAll('#layers tbody tr').length"})
    heading, table_rows, images = seen.heading, seen.values["rows"], seen.images
    assert seen.title == "weightkit report: planted_net"

    assert heading == "Redundant neurons in planted_net"
    assert table_rows == 3
    assert len(images) == expected_images
    assert {src for src, *_ in images} == {f"figures/{name}" for name in figures}
    assert seen.broken_images == []  # the filter tiles and the top-patch grid decode like every figure
    assert seen.remote_requests == []
    assert seen.failures == [] and seen.errors == []
    assert len({url for url in seen.requests if url.endswith(".png")}) == expected_images
    assert screenshot.stat().st_size > 10_000
    if SCREENSHOT_DIR:
        shutil.copyfile(screenshot, os.path.join(SCREENSHOT_DIR, "report_screenshot.png"))
        shutil.copyfile(tmp_path / "report_screenshot_layer.png", os.path.join(SCREENSHOT_DIR, "report_screenshot_layer.png"))
