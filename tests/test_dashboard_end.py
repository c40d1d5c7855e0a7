"""The dashboard's connection pill tells the server's truth about the run's end.

"Live" while subscribed to a running run; "Run ended", with no retry button,
once the server says so (its ``subscribed`` reply, its close 1000 after the
last event, or its close 1001 after every process exited); "Reconnecting",
with the button, only when the connection is lost while the run may still
go on. The log shows the history that exists, whenever the page is opened.
Debian's chromium through Playwright, as in tests/test_dashboard.py.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from browser_fixtures import browser_fixture, page_fixture  # noqa: F401 (fixtures; skips without a browser)
from browser_support import AgentwatchRun
from net_support import TcpProxy
from playwright.sync_api import Page, expect

expect.set_options(timeout=20_000)

LINES = 34
# Prints LINES lines, then waits for its go file (argv[1]) before it exits.
AGENT = f"""
import os, sys, time
for i in range({LINES}):
    print(f"line {{i}}", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
"""


def start(tmp_path: Path, *extra: str) -> tuple[AgentwatchRun, Path]:
    go = tmp_path / "go"
    run = AgentwatchRun(
        tmp_path / "home",
        [sys.executable, "-u", "-c", AGENT, str(go)],
        name="a",
        extra_args=[*extra],
    )
    run.wait_serving()
    return run, go


def pill(page: Page) -> Any:
    return page.get_by_test_id("conn-state")


def expect_ended_with_every_line(page: Page) -> None:
    expect(pill(page)).to_have_attribute("data-state", "ended")
    expect(pill(page)).to_contain_text("Run ended")
    expect(page.get_by_test_id("reconnect-now")).to_be_hidden()
    expect(page.get_by_test_id("log-count")).to_have_text(re.compile(rf"^{LINES + 2} lines$"))
    lines = page.evaluate("agentwatch.outputLines('a')")
    assert [text for _, _, text in lines] == [f"line {i}" for i in range(LINES)]
    expect(page.locator("#log-empty")).to_be_hidden()


def open_after_the_exit(page: Page, run: AgentwatchRun, go: Path) -> None:
    """Let the agent exit, then open the lingering run's page: it has ended, every line there."""
    go.touch()
    run.wait_until(lambda p: p["state"] == "exited", what="the agent's exit")
    page.goto(run.url)
    expect_ended_with_every_line(page)


def test_live_then_run_ended_without_a_retry_button(page: Page, tmp_path: Path) -> None:
    run, go = start(tmp_path, "--linger", "60")
    try:
        page.goto(run.url)
        expect(pill(page)).to_have_attribute("data-state", "live")
        expect(pill(page)).to_have_text("Live")
        page.wait_for_function(f"agentwatch.outputLines('a').length == {LINES}")
        go.touch()  # every process exits; the server lingers
        expect_ended_with_every_line(page)
        expect(page.get_by_test_id("process-state-a")).to_have_text("exited")
        assert page.evaluate("agentwatch.connStates()") == ["connecting", "live", "ended"]
    finally:
        run.close()


def test_opened_during_a_linger_the_run_has_ended(page: Page, tmp_path: Path) -> None:
    """Never "Live", never "Waiting for output..." beside a table that counts lines."""
    run, go = start(tmp_path, "--linger", "60")
    try:
        open_after_the_exit(page, run, go)
        assert page.evaluate("agentwatch.connStates()") == ["connecting", "ended"]
    finally:
        run.close()


def test_the_server_stopping_after_the_run_is_no_connection_loss(
    page: Page, tmp_path: Path
) -> None:
    run, go = start(tmp_path)  # the default linger: stop once subscribers have everything
    try:
        page.goto(run.url)
        expect(pill(page)).to_have_attribute("data-state", "live")
        page.wait_for_function(f"agentwatch.outputLines('a').length == {LINES}")
        go.touch()
        assert run.wait_exit(30) == 0
        expect_ended_with_every_line(page)
        assert "reconnecting" not in page.evaluate("agentwatch.connStates()")
    finally:
        run.close()


def test_a_real_connection_loss_reconnects_with_a_retry_button(page: Page, tmp_path: Path) -> None:
    run, go = start(tmp_path)
    proxy = TcpProxy(run.port)
    try:
        page.goto(f"http://127.0.0.1:{proxy.port}/?token={run.token}")
        expect(pill(page)).to_have_attribute("data-state", "live")
        with proxy.outage():  # the network breaks while the run goes on
            expect(pill(page)).to_have_attribute("data-state", "reconnecting")
            expect(page.get_by_test_id("reconnect-now")).to_be_visible()
        expect(pill(page)).to_have_attribute("data-state", "live")
        expect(page.get_by_test_id("reconnect-now")).to_be_hidden()
        go.touch()
        expect_ended_with_every_line(page)
    finally:
        proxy.close()
        run.close()


def test_a_restart_during_the_linger_makes_the_page_live_again(page: Page, tmp_path: Path) -> None:
    run, go = start(tmp_path, "--linger", "60")
    try:
        open_after_the_exit(page, run, go)
        go.unlink()  # the agent, started again, waits
        page.get_by_test_id("restart-a").click()
        expect(pill(page)).to_have_attribute("data-state", "live")
        expect(page.get_by_test_id("process-state-a")).to_have_text("running")
        page.wait_for_function(f"agentwatch.outputLines('a').length == {2 * LINES}")
        go.touch()
        expect(pill(page)).to_have_attribute("data-state", "ended")
        expect(page.get_by_test_id("reconnect-now")).to_be_hidden()
        assert "reconnecting" not in page.evaluate("agentwatch.connStates()")
    finally:
        run.close()


def test_pending_and_skipped_agents_show_their_state(page: Page, tmp_path: Path) -> None:
    """`up` agents waiting on depends_on are `pending`; those whose dependency failed `skipped`."""
    go = tmp_path / "go"
    team = tmp_path / "team.toml"
    py = sys.executable.replace("\\", "/")
    wait = "import os, sys, time\\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.02)"
    team.write_text(
        f"""
[agents.gate]
command = ["{py}", "-c", "{wait}", "{go}"]

[agents.later]
command = ["{py}", "-c", "print('later ran')"]
depends_on = {{ gate = "completed" }}

[agents.bad]
command = ["{py}", "-c", "raise SystemExit(3)"]

[agents.needs_bad]
command = ["{py}", "-c", "print('never')"]
depends_on = {{ bad = "succeeded" }}
"""
    )
    run = AgentwatchRun(tmp_path / "home", [], up_file=team, extra_args=["--linger", "30"])
    try:
        run.wait_serving()
        page.goto(run.url)
        expect(page.get_by_test_id("process-state-later")).to_have_text("pending")
        expect(page.get_by_test_id("process-state-later")).to_have_class(re.compile("st-pending"))
        expect(page.get_by_test_id("process-state-needs_bad")).to_have_text("skipped")
        expect(page.get_by_test_id("process-state-needs_bad")).to_have_class(
            re.compile("st-skipped")
        )
        go.write_text("go")
        expect(page.get_by_test_id("process-state-later")).to_have_text("exited")
    finally:
        run.close()
