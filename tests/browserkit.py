"""Test kit for the browser: Debian's chromium with the eseal extension, driven by Playwright.

Playwright for Python drives ``/usr/bin/chromium`` from apt (never ``playwright install``);
each browser gets its own user-data-dir, whose ``NativeMessagingHosts`` directory holds the
host manifest written by ``eseal browser install --dir`` (Chromium reads manifests from the
user-data-dir it runs with), so tests running in parallel never share a profile or a host.

    with chromium(tmp_path / "profile", host=True) as context:
        page = context.new_page(); page.goto(f"{server.url}/login")
        with context.expect_page() as popup: page.click("#login")
        consent(popup.value, PIN)
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from eseal.holder.browser_install import extension_dir, install

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 45_000  # generous: make test shares 2 cores with everything else


def need_chromium() -> None:
    """The browser tests need Debian's chromium and Playwright (``make test`` installs both);
    missing either fails loudly instead of skipping."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: `apt-get install chromium` (make test does)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]' (make test does)")


@contextmanager
def chromium(profile: Path, *, host: bool = True, extension: bool = True) -> Iterator[Any]:
    """A persistent chromium context with the unpacked extension (unless not ``extension``);
    the native host installed into the profile when ``host`` (with this process's
    SOFTHSM2_CONF)."""
    from playwright.sync_api import sync_playwright

    need_chromium()
    profile.mkdir(parents=True, exist_ok=True)
    if host:
        install("chromium", target=profile / "NativeMessagingHosts")
    ext = str(extension_dir())
    args = ["--headless=new", "--no-first-run", "--no-default-browser-check"]
    if extension:
        args += [f"--disable-extensions-except={ext}", f"--load-extension={ext}"]
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=args,
            ignore_default_args=["--disable-extensions"] if extension else None)
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def open_page(context: Any, url: str) -> Any:
    """A page at ``url`` once the extension's content script has announced itself."""
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("() => document.documentElement.dataset.esealExtension")
    return page


def click_for_consent(context: Any, page: Any, selector: str) -> Any:
    """Click ``selector`` on the page and return the consent window it opens, loaded."""
    with context.expect_page() as popup:
        page.click(selector)
    consent = popup.value
    consent.wait_for_load_state()
    consent.wait_for_function("() => document.getElementById('origin').textContent")
    return consent


def type_pin(consent: Any, pin: str) -> None:
    consent.fill("#pin", pin)
    consent.click("#ok")


@contextmanager
def static_site(root: Path, files: dict[str, str | bytes]) -> Iterator[str]:
    """A second web server (another origin) serving ``files`` from ``root`` on loopback."""
    root.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        data = body.encode("utf-8") if isinstance(body, str) else body
        (root / name).write_bytes(data)
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(root, ignore_errors=True)


def press_cancel(consent: Any) -> None:
    """Click Cancel / Close: the window closes itself, so the click is dispatched from inside
    the page (a Playwright click racing the window's own close can fail with TargetClosed)."""
    consent.evaluate("() => { setTimeout(() => document.getElementById('cancel').click(), 0); }")
