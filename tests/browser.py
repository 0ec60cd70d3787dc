"""Open a local HTML page in a real headless Chromium with the network cut off, and record what it did.

Shared by the browser tests of the report and of the demo's summary page. Needs the system
``chromium`` (Debian package) and the ``playwright`` Python package; no browser is downloaded.
"""

import os
import shutil
from dataclasses import dataclass, field

CHROMIUM = next((path for path in (os.environ.get("WEIGHTKIT_CHROMIUM"), shutil.which("chromium"),
                                   shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if path and os.path.isfile(path) and os.access(path, os.X_OK)), None)


@dataclass
class PageVisit:
    """What a page did when opened.

    Attributes
    ----------
    title, heading : str
        ``document.title`` and the first ``h1``'s text.
    images : list of (src, complete, natural_width, natural_height)
    requests : list of str
        Every URL requested.
    failures : list of str
        URLs that failed (non-local URLs are aborted, so they land here).
    errors : list of str
        Console errors and uncaught page errors.
    values : dict
        Results of the ``evaluate`` expressions, by name.
    """

    title: str = ""
    heading: str = ""
    images: list = field(default_factory=list)
    requests: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    values: dict = field(default_factory=dict)

    @property
    def broken_images(self):
        return [src for src, complete, width, height in self.images if not (complete and width > 0 and height > 0)]

    @property
    def remote_requests(self):
        return [url for url in self.requests if not url.startswith("file://")]


def visit(path, *, screenshot=None, evaluate=None, after_load=None, viewport=(1400, 1000), full_page=False):
    """Open ``path`` (a local HTML file) offline in headless Chromium.

    Parameters
    ----------
    path : str or Path
    screenshot : str or Path, default=None
        Save a PNG of the viewport (or the whole page with ``full_page``) here.
    evaluate : dict of str to str, default=None
        JavaScript expressions to evaluate after load, stored in ``PageVisit.values``.
    after_load : callable, default=None
        ``after_load(page)`` after the first screenshot (scroll, more screenshots).
    viewport : (int, int)
    full_page : bool, default=False

    Returns
    -------
    PageVisit
    """
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    result = PageVisit()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.on("request", lambda request: result.requests.append(request.url))
            page.on("requestfailed", lambda request: result.failures.append(request.url))
            page.on("console", lambda message: result.errors.append(message.text)
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: result.errors.append(str(error)))
            # Anything that is not a local file is aborted (and recorded above as a failure).
            page.route(lambda url: not url.startswith("file://"), lambda route: route.abort())
            response = page.goto(Path(path).resolve().as_uri(), wait_until="load")
            if response is not None and not response.ok:
                result.errors.append(f"status {response.status} for {path}")
            result.title = page.title()
            result.heading = page.inner_text("h1")
            result.images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth, e.naturalHeight])")
            for name, expression in (evaluate or {}).items():
                result.values[name] = page.evaluate(expression)
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=full_page)
            if after_load is not None:
                after_load(page)
        finally:
            browser.close()
    return result
