"""Progress of a long quantization as plain log lines, for a stderr that is not a terminal.

A live bar is invisible in a log file: a 20-minute run would leave nothing. :class:`LogProgress`
writes one line when a step starts (``converting int8 (4/6) after 12 s``) and, from a background
thread, one line whenever ``interval`` seconds have passed since the last line while a step is still
running (never a "still" line right after a step's own line).
"""

import threading
import time

__all__ = ["LogProgress"]


class LogProgress:
    """Call as ``progress(done, total, what)``; use as a context manager.

    Parameters
    ----------
    write : callable
        Takes one line (without the newline), e.g. :func:`weightkit._common.note`.
    interval : float, default=10.0
        Seconds between the lines of a step that is still running.
    """

    def __init__(self, write, interval=10.0):
        self.write = write
        self.interval = float(interval)
        self._step = None
        self._step_start = None
        self._last_line = None
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._beat, name="weightkit-progress", daemon=True)
        self._thread.start()
        return self

    def __call__(self, done, total, what=""):
        with self._lock:
            if what == self._step:
                return
            self._step, self._step_start = what, time.monotonic()
            self._last_line = self._step_start
            elapsed = self._step_start - self._start
        self.write(f"{what} ({done + 1}/{total}) after {elapsed:.0f} s")

    def _beat(self):
        while not self._stop.wait(min(1.0, self.interval / 5)):
            with self._lock:
                now = time.monotonic()
                if self._step is None or now - self._last_line < self.interval:
                    continue
                self._last_line = now
                running = now - self._step_start
                step = self._step
            self.write(f"still {step}: {running:.0f} s so far")

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        return False
