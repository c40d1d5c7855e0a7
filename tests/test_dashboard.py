"""The dashboard in a real browser: Debian's chromium driven by Playwright.

Each test starts a real ``agentwatch run --port 0 -- python ...`` and opens
the link it prints. Nothing waits for a fixed time: Playwright's `expect`
and `wait_for_function` poll for the condition, with a timeout.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_fixtures import browser_fixture, page_fixture  # noqa: F401 (fixtures; skips without a browser)
from browser_support import AgentwatchRun
from net_support import TcpProxy
from playwright.sync_api import Page, expect

expect.set_options(timeout=20_000)

# Prints "tick N" on stdout every 0.1 s, and every 5th tick a red line on stderr
# with markup that must be shown, not interpreted.
TICKER = r"""
import itertools, sys, time
for i in itertools.count():
    print(f"tick {i}", flush=True)
    if i % 5 == 0:
        print(f"\x1b[31mwarn {i}\x1b[0m <b>&amp;</b>", file=sys.stderr, flush=True)
    time.sleep(0.1)
"""
# Asks a question, then blocks reading stdin: the supervisor reports it as waiting.
PROMPTER = r"""
import sys, time
print("What is your name?", flush=True)
name = sys.stdin.readline().strip()
print(f"hello {name}", flush=True)
time.sleep(600)
"""
HISTORY_LINES = 100_000
BULK = (
    "import sys, time\n"
    f"sys.stdout.write(''.join(f'line {{i}}\\n' for i in range({HISTORY_LINES})))\n"
    "sys.stdout.flush()\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def ticker(tmp_path: Path) -> Iterator[AgentwatchRun]:
    run = AgentwatchRun(tmp_path / "home", [sys.executable, "-u", "-c", TICKER], name="ticker")
    run.wait_serving()
    yield run
    run.close()


def open_dashboard(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.get_by_test_id("conn-state")).to_have_attribute("data-state", "live")


def line(page: Page, text: str) -> Any:
    """The rendered log row whose output is exactly ``text``."""
    return page.get_by_test_id("log-line").filter(has_text=re.compile(rf"(^|\D){re.escape(text)}$"))


def stdout_count(page: Page, name: str) -> int:
    """How many stdout lines of ``name`` the page holds."""
    return int(
        page.evaluate("n => agentwatch.outputLines(n).filter(l => l[1] == 'stdout').length", name)
    )


def assert_complete_and_unique(page: Page, name: str) -> None:
    """Every event since seq 1 arrived once; the agent's lines are all there, in order."""
    ranges = page.evaluate("agentwatch.seqRanges()")
    assert len(ranges) == 1, f"seqs not contiguous: {ranges}"
    assert ranges[0][0] == 1
    lines = page.evaluate("n => agentwatch.outputLines(n)", name)
    seqs = [s for s, _, _ in lines]
    assert seqs == sorted(set(seqs)), "duplicate or out-of-order lines"
    ticks = [int(t.split()[1]) for _, stream, t in lines if stream == "stdout"]
    assert ticks == list(range(len(ticks))), "a stdout line is missing or repeated"
    warns = [int(t.split()[1].split("\x1b")[0]) for _, stream, t in lines if stream == "stderr"]
    assert warns == list(range(0, 5 * len(warns), 5)), "a stderr line is missing or repeated"
    shown = [
        int(s)
        for s in page.get_by_test_id("log-line").evaluate_all(
            "rows => rows.map(r => r.dataset.seq)"
        )
    ]
    assert shown == sorted(set(shown)), "the view shows a line twice or out of order"


def test_token_link_shows_running_agent_and_live_lines(page: Page, ticker: AgentwatchRun) -> None:
    open_dashboard(page, ticker.url)
    # The token in the link set the HttpOnly cookie and left the address bar.
    assert "token=" not in page.url
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["agentwatch_token"]["httpOnly"]
    assert cookies["agentwatch_token"]["value"] == ticker.token

    expect(page.get_by_test_id("process-row-ticker")).to_be_visible()
    expect(page.get_by_test_id("process-state-ticker")).to_have_text("running")
    expect(page.get_by_test_id("process-pid-ticker")).to_have_text(str(ticker.process()["pid"]))
    expect(page.get_by_test_id("tab-ticker")).to_be_visible()

    # Lines printed after the page loaded show up, live.
    expect(line(page, "tick 3")).to_be_visible()
    newest = stdout_count(page, "ticker")
    expect(line(page, f"tick {newest + 10}")).to_be_visible()

    # stdout and stderr are told apart; ANSI colour rendered; markup shown as text.
    out_row = line(page, f"tick {newest + 10}")
    expect(out_row).to_have_attribute("data-stream", "stdout")
    err_row = page.locator('[data-testid="log-line"][data-stream="stderr"]').last
    expect(err_row).to_contain_text("<b>&amp;</b>")
    assert "\x1b" not in err_row.inner_text()
    assert "[31m" not in err_row.inner_text()
    expect(err_row.locator(".tx span.f1")).to_have_text(re.compile(r"warn \d+"))

    # The process tab shows only that process's lines, without the process column.
    page.get_by_test_id("tab-ticker").click()
    expect(page.get_by_test_id("tab-ticker")).to_have_attribute("aria-selected", "true")
    expect(page.locator('[data-testid="log-line"] .pn')).to_have_count(0)

    # The filter box narrows the view; stream toggles hide a stream.
    page.get_by_test_id("filter").fill("/^tick 2$/")
    expect(page.get_by_test_id("log-line")).to_have_count(1)
    page.get_by_test_id("filter").fill("warn")
    expect(page.locator('[data-testid="log-line"][data-stream="stdout"]')).to_have_count(0)
    page.get_by_test_id("filter").fill("")
    page.get_by_test_id("show-stderr").uncheck()
    expect(page.locator('[data-testid="log-line"][data-stream="stderr"]')).to_have_count(0)
    page.get_by_test_id("show-stderr").check()


def test_follow_pauses_when_scrolled_up(page: Page, ticker: AgentwatchRun) -> None:
    open_dashboard(page, ticker.url)
    expect(line(page, "tick 60")).to_be_visible()  # more lines than the view holds
    log = page.get_by_test_id("log-view")
    log.hover()
    page.mouse.wheel(0, -600)
    expect(page.get_by_test_id("follow")).to_have_attribute("aria-pressed", "false")
    top = log.evaluate("el => el.scrollTop")
    first_seq = page.get_by_test_id("log-line").first.get_attribute("data-seq")
    # New lines keep arriving; the person's place does not move.
    expect(page.get_by_test_id("jump-bottom")).to_be_visible()
    expect(page.get_by_test_id("jump-bottom")).to_have_text(re.compile(r"[1-9]\d* new line"))
    assert log.evaluate("el => el.scrollTop") == top
    assert page.get_by_test_id("log-line").first.get_attribute("data-seq") == first_seq
    page.get_by_test_id("jump-bottom").click()
    expect(page.get_by_test_id("follow")).to_have_attribute("aria-pressed", "true")
    newest = stdout_count(page, "ticker")
    expect(line(page, f"tick {newest + 3}")).to_be_visible()


def test_survives_dropped_connection_without_gap_or_duplicate(
    page: Page, ticker: AgentwatchRun
) -> None:
    proxy = TcpProxy(ticker.port)
    try:
        conn = page.get_by_test_id("conn-state")
        open_dashboard(page, f"http://127.0.0.1:{proxy.port}/?token={ticker.token}")
        expect(line(page, "tick 5")).to_be_visible()

        # 1. The network breaks (connections reset, new ones refused) while the agent prints.
        with proxy.outage():
            expect(conn).to_have_attribute("data-state", "reconnecting")
            missed_from = ticker.process()["lastSeq"]
            ticker.wait_until(lambda p: p["lastSeq"] > missed_from + 20, what="output meanwhile")
        target = ticker.process()["lastSeq"]
        expect(conn).to_have_attribute("data-state", "live")
        page.wait_for_function("s => agentwatch.lastSeq >= s", arg=target)
        assert page.evaluate("agentwatch.reconnects") >= 1
        assert_complete_and_unique(page, "ticker")

        # 2. The socket closes under the page (e.g. a proxy's idle timeout).
        before = page.evaluate("agentwatch.reconnects")
        page.evaluate("agentwatch.dropConnection()")
        page.wait_for_function(
            "n => agentwatch.reconnects > n && agentwatch.connState == 'live'", arg=before
        )
        target = ticker.process()["lastSeq"]
        page.wait_for_function("s => agentwatch.lastSeq >= s", arg=target)
        assert_complete_and_unique(page, "ticker")

        # 3. The browser goes offline and comes back.
        before = page.evaluate("agentwatch.reconnects")
        page.context.set_offline(True)
        expect(conn).not_to_have_attribute("data-state", "live")
        page.context.set_offline(False)
        page.wait_for_function(
            "n => agentwatch.reconnects > n && agentwatch.connState == 'live'", arg=before
        )
        target = ticker.process()["lastSeq"]
        page.wait_for_function("s => agentwatch.lastSeq >= s", arg=target)
        assert_complete_and_unique(page, "ticker")
        newest = stdout_count(page, "ticker")
        expect(line(page, f"tick {newest + 3}")).to_be_visible()
    finally:
        proxy.close()


def test_stop_button_stops_the_agent(page: Page, ticker: AgentwatchRun) -> None:
    open_dashboard(page, ticker.url)
    expect(page.get_by_test_id("process-state-ticker")).to_have_text("running")
    page.get_by_test_id("stop-ticker").click()
    # The agent stops; with its only agent stopped, `agentwatch run` ends, with 128 + SIGTERM.
    assert ticker.wait_exit(30) == 128 + signal.SIGTERM
    expect(page.get_by_test_id("action-error")).to_be_hidden()
    # The page saw the agent's last event before the server went away ...
    final = "the server must deliver process-stopped to subscribers before it shuts down"
    stopped_line = page.get_by_test_id("log-line").filter(has_text="killed by SIGTERM")
    expect(stopped_line, final).to_have_count(1)
    expect(page.get_by_test_id("process-state-ticker")).to_have_text("exited")
    expect(page.get_by_test_id("process-exit-ticker")).to_have_text("SIGTERM")
    expect(page.get_by_test_id("stop-ticker")).to_be_disabled()
    # ... says the run is over (the server closed with "run finished"), and keeps what it saw.
    expect(page.get_by_test_id("conn-state")).to_have_attribute("data-state", "ended")
    expect(page.get_by_test_id("conn-state")).to_have_text("Run ended")
    expect(page.get_by_test_id("process-state-ticker")).to_have_text("exited")


def test_restart_button_restarts_the_agent(page: Page, ticker: AgentwatchRun) -> None:
    open_dashboard(page, ticker.url)
    expect(page.get_by_test_id("process-state-ticker")).to_have_text("running")
    old_pid = page.get_by_test_id("process-pid-ticker").inner_text()
    page.get_by_test_id("restart-ticker").click()
    expect(page.get_by_test_id("process-restarts-ticker")).to_have_text("1")
    expect(page.get_by_test_id("process-state-ticker")).to_have_text("running")
    expect(page.get_by_test_id("process-pid-ticker")).not_to_have_text(old_pid)
    expect(page.get_by_test_id("log-line").filter(has_text="restart #1")).to_have_count(1)
    assert ticker.proc.poll() is None


def test_refused_action_is_shown(page: Page, ticker: AgentwatchRun) -> None:
    open_dashboard(page, ticker.url)
    body = {"error": {"code": "conflict", "message": "ticker is restarting"}}
    page.route(
        "**/api/processes/ticker/stop*",
        lambda route: route.fulfill(
            status=409, content_type="application/json", body=json.dumps(body)
        ),
    )
    page.get_by_test_id("stop-ticker").click()
    expect(page.get_by_test_id("action-error")).to_be_visible()
    expect(page.get_by_test_id("action-error")).to_contain_text("ticker is restarting")
    expect(page.get_by_test_id("process-state-ticker")).to_have_text("running")


def test_tasks_and_alerts_panels(page: Page, ticker: AgentwatchRun) -> None:
    open_dashboard(page, ticker.url)
    import urllib.request

    def publish(event: dict[str, Any]) -> None:
        req = urllib.request.Request(
            ticker.origin + "/api/events",
            data=json.dumps(event).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {ticker.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 201

    publish(
        {
            "type": "task-assigned",
            "processId": None,
            "taskId": "t-1",
            "title": "Write the parser",
            "assignee": "ticker",
        }
    )
    task = page.get_by_test_id("task-t-1")
    expect(task).to_contain_text("Write the parser")
    expect(task).to_have_attribute("data-status", "assigned")
    publish(
        {
            "type": "task-completed",
            "processId": None,
            "taskId": "t-1",
            "status": "success",
            "result": "42 tests pass",
        }
    )
    expect(task).to_have_attribute("data-status", "success")
    expect(task).to_contain_text("42 tests pass")
    publish(
        {
            "type": "system-alert",
            "processId": None,
            "level": "error",
            "message": "<script>boom</script>",
            "code": "x-test",
        }
    )
    alert = page.get_by_test_id("alert").first
    expect(alert).to_have_attribute("data-level", "error")
    expect(alert).to_contain_text("<script>boom</script>")


def test_agent_waiting_for_input_is_highlighted(page: Page, tmp_path: Path) -> None:
    run = AgentwatchRun(
        tmp_path / "home", [sys.executable, "-u", "-c", PROMPTER], name="asker", stdin_pipe=True
    )
    try:
        open_dashboard(page, run.wait_serving())
        expect(line(page, "What is your name?")).to_be_visible()
        state = page.get_by_test_id("process-state-asker")
        expect(state).to_have_attribute("data-state", "waiting")
        expect(state).to_have_text("waiting for input")
        expect(page.get_by_test_id("process-row-asker")).to_have_attribute("data-state", "waiting")
        expect(page.get_by_test_id("waiting-banner")).to_be_visible()
        expect(page.get_by_test_id("waiting-banner")).to_contain_text("asker")
        expect(page).to_have_title(re.compile(r"1 waiting"))
        run.send_input("Ada\n")
        expect(line(page, "hello Ada")).to_be_visible()
        expect(state).to_have_text("running")
        expect(page.get_by_test_id("waiting-banner")).to_be_hidden()
    finally:
        run.close()


def test_100k_lines_of_history_load_fast_with_a_capped_dom(page: Page, tmp_path: Path) -> None:
    run = AgentwatchRun(tmp_path / "home", [sys.executable, "-u", "-c", BULK], name="bulk")
    try:
        run.wait_serving()
        run.wait_until(
            lambda p: p["lines"]["stdout"] >= HISTORY_LINES, timeout=60, what="100,000 lines"
        )
        started = time.monotonic()
        open_dashboard(page, run.url)
        page.wait_for_function(
            f"agentwatch.caughtUp && agentwatch.ringSize > {HISTORY_LINES}", timeout=60_000
        )
        expect(line(page, f"line {HISTORY_LINES - 1}")).to_be_visible()
        loaded_s = time.monotonic() - started
        assert loaded_s < 20, f"100,000 lines took {loaded_s:.1f} s to show"
        rows = page.get_by_test_id("log-line")
        assert rows.count() <= 300, "the log view must not render the whole history"
        expect(page.get_by_test_id("log-count")).to_have_text(re.compile(r"^100,00\d lines$"))

        # Filtering the whole history stays quick.
        t = time.monotonic()
        page.get_by_test_id("filter").fill("/^line 4242$/")
        expect(rows).to_have_count(1)
        expect(line(page, "line 4242")).to_be_visible()
        assert time.monotonic() - t < 5
        page.get_by_test_id("filter").fill("")
        expect(line(page, f"line {HISTORY_LINES - 1}")).to_be_visible()

        # Scrolling to the very top shows the first line; the DOM stays small.
        page.get_by_test_id("log-view").evaluate("el => { el.scrollTop = 0; }")
        expect(page.get_by_test_id("follow")).to_have_attribute("aria-pressed", "false")
        expect(line(page, "line 0")).to_be_visible()
        assert rows.count() <= 300
        # The page still answers promptly (no long task blocking the main thread).
        frame_ms = page.evaluate(
            "() => new Promise(r => { const t = performance.now(); requestAnimationFrame("
            "() => requestAnimationFrame(() => r(performance.now() - t))); })"
        )
        assert frame_ms < 500
    finally:
        run.close()
