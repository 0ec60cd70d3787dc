"""The report in a real headless Chromium: it loads from disk, every image decodes, nothing is fetched
from the network. A screenshot is saved for a person to look at."""

import os
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = next((path for path in (os.environ.get("WEIGHTKIT_CHROMIUM"), shutil.which("chromium"),
                                   shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if path and os.path.isfile(path) and os.access(path, os.X_OK)), None)
SCREENSHOT_COPY = "/tmp/report_screenshot.png"  # and /tmp/report_screenshot_layer.png: for a person to look at


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
    from playwright.sync_api import sync_playwright

    from reports import write_report

    out = tmp_path / "report"
    result = write_report(build_planted_model(keras), out, path="planted.keras")
    expected_images = 4 * len(result.layers) + 1
    requests, failures, errors = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda request: requests.append(request.url))
            page.on("requestfailed", lambda request: failures.append(request.url))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            # Anything that is not a local file is aborted (and recorded above as a failure).
            page.route(lambda url: not url.startswith("file://"), lambda route: route.abort())
            response = page.goto((out / "index.html").as_uri(), wait_until="load")
            assert response is None or response.ok
            assert page.title() == "weightkit report: planted_net"
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth, e.naturalHeight])")
            heading = page.inner_text("h1")
            table_rows = page.locator("#layers tbody tr").count()
            screenshot = tmp_path / "report_screenshot.png"
            page.screenshot(path=str(screenshot))
            page.locator("#layer-planted").scroll_into_view_if_needed()
            page.evaluate("document.getElementById('layer-planted').scrollIntoView()")
            page.screenshot(path=str(tmp_path / "report_screenshot_layer.png"))
        finally:
            browser.close()

    assert heading == "Redundant neurons in planted_net"
    assert table_rows == len(result.layers)
    assert len(images) == expected_images
    broken = [src for src, complete, width, height in images if not (complete and width > 0 and height > 0)]
    assert broken == []
    assert [url for url in requests if not url.startswith("file://")] == []
    assert failures == [] and errors == []
    assert len({url for url in requests if url.endswith(".png")}) == expected_images
    assert screenshot.stat().st_size > 10_000
    shutil.copyfile(screenshot, SCREENSHOT_COPY)
    shutil.copyfile(tmp_path / "report_screenshot_layer.png", SCREENSHOT_COPY.replace(".png", "_layer.png"))
