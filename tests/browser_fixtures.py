"""The `browser` (module scope) and `page` fixtures of the dashboard tests.

Imported by tests/test_dashboard.py and tests/test_dashboard_end.py only (other
tests never import Playwright). Importing it skips the importing module when
Playwright or chromium is missing, and fails it in CI, where nothing may skip
silently (scripts/test.sh installs both). The fixtures are named with ``name=``
so the modules that import them can take ``page`` arguments. A page fails its
test if the page raised an uncaught error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from browser_support import CHROMIUM_ARGS, browser_unavailable, chromium_path

_why = browser_unavailable()
if _why and os.environ.get("CI"):
    raise RuntimeError(f"browser tests need Playwright and chromium: {_why}")
if _why:
    pytest.skip(f"browser tests need Playwright and chromium: {_why}", allow_module_level=True)

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(name="page")
def page_fixture(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
