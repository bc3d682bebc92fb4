"""Debian's headless chromium, driven over the Chrome DevTools Protocol on a pipe.

``--remote-debugging-pipe`` makes chromium read CDP commands from fd 3 and write replies and
events to fd 4, each message JSON ended by a NUL byte (as Puppeteer and Playwright drive it with
``pipe: true``). That needs nothing but the standard library: no websocket client, no browser
download, no driver. ``make test`` installs chromium (the Makefile's ``/usr/bin/chromium``
target).

The flags are those a closed network needs: no background networking, component updates, sync
or first-run work, so the browser itself asks for nothing and a page's own requests are the only
ones (:attr:`Page.requests`).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

TIMEOUT_S = 60.0  # a browser that stops answering fails the test instead of hanging it
FLAGS = (
    "--headless",
    "--no-sandbox",  # root in CI; the page is our own file
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


def chromium_path() -> str:
    """The chromium binary (``make test`` installs Debian's), or a clear failure."""
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError(
            "chromium is not installed: `make chromium` (or `make test`) installs Debian's"
        )
    return path


@dataclass
class Page:
    """What a loaded page said: console messages and exceptions, and the URLs it requested."""

    console: list[dict[str, Any]] = field(default_factory=list)  # Runtime.consoleAPICalled
    exceptions: list[dict[str, Any]] = field(default_factory=list)  # Runtime.exceptionThrown
    log: list[dict[str, Any]] = field(default_factory=list)  # Log.entryAdded (network, CSP, …)
    requests: list[str] = field(default_factory=list)  # Network.requestWillBeSent URLs

    @property
    def errors(self) -> list[str]:
        """Every console error, uncaught exception and error log entry, as text."""
        found = [
            " ".join(str(a.get("value", a.get("description", ""))) for a in m.get("args", []))
            for m in self.console
            if m.get("type") in ("error", "assert")
        ]
        found += [e.get("exceptionDetails", {}).get("text", "exception") for e in self.exceptions]
        found += [e["entry"].get("text", "") for e in self.log if e["entry"]["level"] == "error"]
        return found


class Browser:
    """One chromium process and one page target, commanded synchronously."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="stepnet-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child's fd 3 reads commands, fd 4 writes answers
        self._process = subprocess.Popen(
            [
                chromium_path(),
                *FLAGS,
                f"--user-data-dir={self._profile.name}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=_pipes_to(to_browser_r, from_browser_w),
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._writer: BinaryIO = os.fdopen(self._to_browser, "wb", buffering=0)
        self._reader: BinaryIO = os.fdopen(self._from_browser, "rb", buffering=0)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self.width, self.height = width, height
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]

    def close(self) -> None:
        with suppress(OSError, RuntimeError):
            self.send("Browser.close")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._writer.close()
        self._reader.close()
        self._profile.cleanup()

    # --- the protocol ---------------------------------------------------------------------

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """One command; its result. Events that arrive meanwhile are kept for :meth:`_drain`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self._writer.write(json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self._events.append(reply)

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._reader], [], [], TIMEOUT_S)
            if not ready:
                raise TimeoutError(f"chromium said nothing for {TIMEOUT_S} s")
            chunk = self._reader.read(1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def _wait_for(self, method: str) -> dict[str, Any]:
        for index, event in enumerate(self._events):
            if event.get("method") == method:
                return self._events.pop(index)
        while True:
            event = self._read()
            if event.get("method") == method:
                return event
            self._events.append(event)

    # --- a page ---------------------------------------------------------------------------

    def load(self, url: str) -> Page:
        """Navigate to ``url`` and wait for its load event; what it logged and requested."""
        page_session = self._session
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", page_session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            page_session,
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self._events.clear()
        self.send("Page.navigate", page_session, url=url)
        self._wait_for("Page.loadEventFired")
        self.evaluate("new Promise(r => requestAnimationFrame(() => r(1)))")  # painted
        page = Page()
        for event in self._events:
            params = event.get("params", {})
            method = event.get("method")
            if method == "Runtime.consoleAPICalled":
                page.console.append(params)
            elif method == "Runtime.exceptionThrown":
                page.exceptions.append(params)
            elif method == "Log.entryAdded":
                page.log.append(params)
            elif method == "Network.requestWillBeSent":
                page.requests.append(params["request"]["url"])
        self._events.clear()
        return page

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send(
            "Runtime.evaluate",
            self._session,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """A PNG of the page (the whole page's height with ``full_page``)."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            height = int(self.evaluate("document.documentElement.scrollHeight"))
            params["clip"] = {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1}
        data = self.send("Page.captureScreenshot", self._session, **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path


def _pipes_to(reads: int, writes: int) -> Any:
    def child() -> None:  # in the child, before exec: its fds 3 and 4 are the pipes' ends
        high_reads = fcntl.fcntl(reads, fcntl.F_DUPFD, 10)  # out of the way of 3 and 4 first
        high_writes = fcntl.fcntl(writes, fcntl.F_DUPFD, 10)
        os.dup2(high_reads, 3)
        os.dup2(high_writes, 4)

    return child


@contextmanager
def browser(width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """``with browser() as b: page = b.load(url)``; the process ends with the block."""
    opened = Browser(width, height)
    try:
        yield opened
    finally:
        opened.close()
