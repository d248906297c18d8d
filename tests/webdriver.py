"""A minimal W3C WebDriver client over urllib, for driving headless Chromium in tests.

``Driver.start()`` runs ``chromedriver --port=FREE`` and ``Driver.stop()``
ends it by PID; ``driver.session()`` opens a headless Chromium session
(``--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage``).
A ``Session`` navigates, finds elements by CSS selector, clicks, types, reads
text and attributes, runs a script, and ends with ``close()``.  Every HTTP
call and every wait is bounded in time; ``wait_until`` polls a condition
until a deadline and fails naming what it waited for.

Only what tests/test_admin.py needs, from the W3C spec
(https://www.w3.org/TR/webdriver2/): new session, navigate, find element(s),
element click / send keys / text / attribute, execute script, screenshot, delete
session.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any, Callable, TypeVar

ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"    # W3C web element identifier
CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--window-size=1280,900"]
CALL_TIMEOUT = 30.0          # one WebDriver command
START_TIMEOUT = 20.0         # chromedriver answering /status

T = TypeVar("T")


class WebDriverError(Exception):
    """A command failed: ``error`` is the W3C error code (e.g. "no such element")."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error


def available() -> bool:
    return shutil.which("chromedriver") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond: Callable[[], T | None], timeout: float, what: str,
               interval: float = 0.05) -> T:
    """Poll ``cond`` until it returns a true value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = cond()
            if value:
                return value
        except (WebDriverError, OSError) as e:      # e.g. a stale element mid-refresh
            last = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}"
                               + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


def _call(url: str, method: str = "GET", body: Any = None,
          timeout: float = CALL_TIMEOUT) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        payload = json.loads(e.read() or b"{}")
    value = payload.get("value")
    if isinstance(value, dict) and "error" in value:
        raise WebDriverError(value["error"], value.get("message", ""))
    return value


class Driver:
    """One chromedriver process."""

    def __init__(self) -> None:
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Driver":
        exe = shutil.which("chromedriver")
        if exe is None:
            raise RuntimeError("chromedriver is not installed (make test installs it)")
        self.port = free_port()
        self.proc = subprocess.Popen([exe, f"--port={self.port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{self.port}/status"

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromedriver exited with {self.proc.returncode}")
            return bool(_call(url, timeout=2).get("ready"))

        wait_until(ready, START_TIMEOUT, "chromedriver to answer /status", interval=0.1)
        return self

    def stop(self) -> None:
        """Terminate chromedriver by PID; SIGKILL if it does not go within 5 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def session(self) -> "Session":
        opts: dict[str, Any] = {"args": CHROME_ARGS}
        binary = shutil.which("chromium")
        if binary:
            opts["binary"] = os.path.realpath(binary)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": opts,
            "timeouts": {"implicit": 0, "pageLoad": 20000, "script": 10000}}}}
        value = _call(f"http://127.0.0.1:{self.port}/session", "POST", caps, timeout=60)
        return Session(f"http://127.0.0.1:{self.port}/session/{value['sessionId']}")


class Element:
    def __init__(self, session: "Session", eid: str) -> None:
        self.session = session
        self.id = eid

    def _url(self, what: str) -> str:
        return f"{self.session.url}/element/{self.id}/{what}"

    def click(self) -> None:
        _call(self._url("click"), "POST", {})

    def send_keys(self, text: str) -> None:
        _call(self._url("value"), "POST", {"text": text})

    @property
    def text(self) -> str:
        return str(_call(self._url("text")))

    def attribute(self, name: str) -> str | None:
        value = _call(self._url(f"attribute/{name}"))
        return None if value is None else str(value)

    def find(self, css: str) -> "Element":
        value = _call(self._url("element"), "POST", {"using": "css selector", "value": css})
        return Element(self.session, value[ELEMENT_KEY])


class Session:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, url: str) -> None:
        _call(f"{self.url}/url", "POST", {"url": url})

    def find(self, css: str) -> Element:
        value = _call(f"{self.url}/element", "POST", {"using": "css selector", "value": css})
        return Element(self, value[ELEMENT_KEY])

    def find_all(self, css: str) -> list[Element]:
        values = _call(f"{self.url}/elements", "POST", {"using": "css selector", "value": css})
        return [Element(self, v[ELEMENT_KEY]) for v in values]

    def execute(self, script: str, *args: Any) -> Any:
        return _call(f"{self.url}/execute/sync", "POST", {"script": script, "args": list(args)})

    def screenshot(self) -> bytes:
        """The viewport as PNG (for looking at a failing page)."""
        return base64.b64decode(_call(f"{self.url}/screenshot"))

    def wait_for(self, css: str, timeout: float = 10.0) -> Element:
        """The first element matching ``css``, waiting up to ``timeout`` for it to appear."""
        return wait_until(lambda: (self.find_all(css) or [None])[0], timeout,
                          f"an element matching {css!r}")

    def close(self) -> None:
        try:
            _call(self.url, "DELETE", timeout=15)
        except (WebDriverError, OSError):
            pass
