"""`agentwatch up` end to end (SPEC 5, 6): a team of agents under one server and
one journal, dependencies, exit statuses, crash loops, Ctrl-C and SIGTERM with
per-agent grace, the [server] table, and config errors that start nothing."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI, read_events
from test_cli_support import (
    Reader,
    agent_env,
    client,
    discoveries,
    json_lines,
    one_error_line,
    ps_json,
    start_up,
    wait_state,
    write,
)

pytestmark = pytest.mark.timeout(180)
PY = json.dumps(sys.executable)


def agent(name: str, code: str, **keys: Any) -> str:
    """An [agents.NAME] table running ``code`` with this Python."""
    lines = [f"[agents.{name}]", f"command = [{PY}, '-u', '-c', {json.dumps(code)}]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def toml_value(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


def of(events: list[dict[str, Any]], type_: str, pid: str | None = None) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type_ and (pid is None or e["processId"] == pid)]


def up_run(
    cli: CLI, toml: Path, *args: str, timeout: float = 90
) -> tuple[int, list[dict[str, Any]]]:
    res = cli.run("up", "-q", "--quiet-server", "-f", toml, *args, env=agent_env(), timeout=timeout)
    [run] = cli.runs()
    return res.returncode, read_events(run / "events.jsonl")


def test_dependency_chain_one_journal(cli: CLI, tmp_path: Path) -> None:
    marker = (
        "import os, time; print(os.environ['AGENTWATCH_PROCESS_ID'], flush=True); time.sleep(0.3)"
    )
    toml = write(
        tmp_path / "agentwatch.toml",
        "".join(
            [
                agent("c", marker, depends_on=["b"]),
                agent("b", marker, depends_on=["a"]),
                agent("a", marker, env={"X": "1"}),
                agent("solo", "print('solo')"),
            ]
        ),
    )
    status, events = up_run(cli, toml)
    assert status == 0
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # one run, one seq
    started = {e["processId"]: e["seq"] for e in of(events, "process-started")}
    assert started["a"] < started["b"] < started["c"]  # each after what it depends on runs
    for name in "abc":
        [out] = of(events, "process-output", name)
        assert out["output"] == name
        assert of(events, "process-started", name)[0]["cwd"] == str(tmp_path.resolve())


def test_exit_status_is_the_first_failure(cli: CLI, tmp_path: Path) -> None:
    toml = write(
        tmp_path / "t.toml",
        "".join(
            [
                agent("late", "import time; time.sleep(1.5); raise SystemExit(4)"),
                agent("early", "raise SystemExit(5)"),
                agent("fine", "pass"),
            ]
        ),
    )
    status, events = up_run(cli, toml)
    assert status == 5
    assert {e["processId"]: e["exitCode"] for e in of(events, "process-stopped")} == {
        "late": 4,
        "early": 5,
        "fine": 0,
    }


def test_crash_loop_hits_its_restart_limit(cli: CLI, tmp_path: Path) -> None:
    toml = write(
        tmp_path / "t.toml",
        "".join(
            [
                agent(
                    "crashy",
                    "print('boom', flush=True); raise SystemExit(3)",
                    restart="on-failure",
                    max_restarts=2,
                    backoff=0.05,
                ),
                agent("steady", "import time; time.sleep(0.5)"),
            ]
        ),
    )
    status, events = up_run(cli, toml)
    assert status == 3
    assert len(of(events, "process-started", "crashy")) == 3  # the first run and 2 restarts
    assert [e["willRestart"] for e in of(events, "process-stopped", "crashy")] == [
        True,
        True,
        False,
    ]
    [error] = of(events, "process-error", "crashy")
    assert error["kind"] == "restart-limit"
    assert [a["code"] for a in of(events, "system-alert", "crashy")] == ["restart-limit"]
    assert of(events, "process-stopped", "steady")[0]["exitCode"] == 0


STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(120)
"""
POLITE = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: (print("bye", flush=True), sys.exit(0)))
signal.signal(signal.SIGINT, lambda *a: (print("bye", flush=True), sys.exit(0)))
print("ready", flush=True)
time.sleep(120)
"""


def wait_ready(live: Any, names: list[str]) -> None:
    for name in names:
        live.wait_event(lambda e, n=name: e["processId"] == n and e.get("output") == "ready")


def test_sigterm_stops_all_stubborn_one_killed_after_its_grace(cli: CLI, tmp_path: Path) -> None:
    toml = write(
        tmp_path / "t.toml", agent("stubborn", STUBBORN, grace=1.0) + agent("polite", POLITE)
    )
    live = start_up(cli, toml)
    wait_ready(live, ["stubborn", "polite"])
    t0 = time.monotonic()
    live.proc.send_signal(signal.SIGTERM)
    status = live.finish(timeout=60)
    elapsed = time.monotonic() - t0
    events = live.events()
    stopped = {e["processId"]: e for e in of(events, "process-stopped")}
    assert (stopped["polite"]["exitCode"], stopped["polite"]["signal"]) == (0, None)
    assert stopped["stubborn"]["signal"] == "SIGKILL"
    assert stopped["stubborn"]["durationMs"] >= 1000  # not before its grace
    assert 0.9 < elapsed < 30
    assert status == 128 + signal.SIGKILL  # the first (and only) failure
    assert not (cli.home / "runs" / live.run_id / "server.json").exists()


def test_second_ctrl_c_kills_at_once(cli: CLI, tmp_path: Path) -> None:
    toml = write(
        tmp_path / "t.toml", agent("stubborn", STUBBORN, grace=60) + agent("polite", POLITE)
    )
    live = start_up(cli, toml)
    wait_ready(live, ["stubborn", "polite"])
    live.proc.send_signal(signal.SIGINT)
    live.wait_event(lambda e: e["type"] == "process-stopped" and e["processId"] == "polite")
    t0 = time.monotonic()
    live.proc.send_signal(signal.SIGINT)
    status = live.finish(timeout=30)
    assert time.monotonic() - t0 < 15  # far less than the 60 s grace
    assert status == 128 + signal.SIGKILL
    stopped = {e["processId"]: e for e in of(live.events(), "process-stopped")}
    assert stopped["stubborn"]["signal"] == "SIGKILL"


def test_server_table_names_and_flags(cli: CLI, tmp_path: Path) -> None:
    toml = write(
        tmp_path / "t.toml",
        "[server]\ntoken = 'team-token'\njournal = 'team.jsonl'\n"
        + agent("db", "import time; time.sleep(60)")
        + agent("api", "import time; time.sleep(60)", depends_on=["db"])
        + agent("docs", "import time; time.sleep(60)"),
    )
    live = start_up(cli, toml, "api")  # api and what it depends on
    [info] = discoveries(cli.home)
    assert info["token"] == "team-token"
    assert sorted(info["processes"]) == ["api", "db"]
    assert sorted(p["processId"] for p in ps_json(cli)) == ["api", "db"]
    wait_state(cli, "api", "running")
    res = client(cli, "subscribe", "--no-follow", "--json", "--type", "process-started")
    assert sorted(e["processId"] for e in json_lines(res.stdout)) == ["api", "db"]
    live.proc.send_signal(signal.SIGTERM)
    assert live.finish() == 128 + signal.SIGTERM
    journal = tmp_path / "team.jsonl"  # [server] journal, relative to the file
    assert {e["processId"] for e in of(read_events(journal), "process-started")} == {"api", "db"}

    flagged = start_up(cli, toml, "docs", "--token", "flag-token")  # a flag beats the file
    assert next(d for d in discoveries(cli.home) if d["runId"] == flagged.run_id)["token"] == (
        "flag-token"
    )
    flagged.proc.send_signal(signal.SIGTERM)
    flagged.finish()


def test_dependency_that_never_starts(cli: CLI, tmp_path: Path) -> None:
    toml = write(
        tmp_path / "t.toml",
        "[agents.base]\ncommand = ['/nonexistent/tool']\n"
        + agent("user", "print('should not run')", depends_on=["base"]),
    )
    status, events = up_run(cli, toml)
    assert status == 127  # the first failure: base's command was not found
    assert of(events, "process-started") == []
    [alert] = of(events, "system-alert", "user")
    assert alert["code"] == "dependency-failed"


CONFIG_ERRORS = [
    ("[agents.a]\ncommand = 'true'\ntimout = 5\n", ["agent 'a'", "unknown key 'timout'"]),
    ("[agents.a]\ncommand = 'true'\nmax_restarts = 'many'\n", ["agent 'a'", "max_restarts"]),
    ("[agents.a]\ncommand = 'true'\ndepends_on = ['b']\n", ["agent 'a'", "unknown agent 'b'"]),
    (
        "[agents.a]\ncommand = 'true'\ndepends_on = ['b']\n[agents.b]\ncommand = 'true'\n"
        "depends_on = ['a']\n",
        ["dependency cycle"],
    ),
    ("[agents.a]\ncommand = 'true'\n[server]\nport = 'x'\n", ["[server]", "port"]),
    (
        "[agents.a]\ncommand = 'true'\ndepends_on = { b = 'finished' }\n[agents.b]\n"
        "command = 'true'\n",
        ["agent 'a'", "depends_on.b", "started, completed or succeeded", "'finished'"],
    ),
    (
        "[agents.a]\ncommand = 'true'\ndepends_on = { b = 'succeeded' }\n",
        ["agent 'a'", "depends_on", "unknown agent 'b'"],
    ),
    (
        "[agents.a]\ncommand = 'true'\ndepends_on = { b = 'completed' }\n[agents.b]\n"
        "command = 'true'\ndepends_on = { a = 'succeeded' }\n",
        ["agent 'a'", "depends_on", "dependency cycle a -> b -> a"],
    ),
    ("[agents.a\n", ["invalid TOML"]),
]


@pytest.mark.parametrize(("text", "words"), CONFIG_ERRORS)
def test_config_errors_start_nothing(cli: CLI, tmp_path: Path, text: str, words: list[str]) -> None:
    toml = write(tmp_path / "bad.toml", text)
    res = cli.run("up", "-f", toml, env=agent_env())
    one_error_line(res, 125, str(toml), *words)
    assert cli.runs() == []  # no run folder, no journal, no server


def test_up_usage_errors(cli: CLI, tmp_path: Path) -> None:
    one_error_line(cli.run("up", "-f", tmp_path / "missing.toml"), 125, "file not found")
    toml = write(tmp_path / "t.toml", agent("a", "pass"))
    one_error_line(cli.run("up", "-f", toml, "nobody"), 125, "no agent named 'nobody'")
    one_error_line(cli.run("up", "-f", toml, "--journal", "x", "--no-journal"), 125, "exclude")
    assert cli.runs() == []


GATED = """
import os, sys, time
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
raise SystemExit(int(sys.argv[2]))
"""


def test_subscribe_until_every_agent_ends(cli: CLI, tmp_path: Path) -> None:
    go = tmp_path / "go"
    table = "[agents.{0}]\ncommand = [{1}, '-u', '-c', {2}, {3}, '{4}']\n"
    toml = write(
        tmp_path / "t.toml",
        "".join(
            table.format(name, PY, json.dumps(GATED), json.dumps(str(go)), code)
            for name, code in (("ok", 0), ("bad", 6), ("late", 0))
        ).replace("[agents.late]", "[agents.late]\ndepends_on = ['bad']"),
    )
    live = start_up(cli, toml)
    wait_ready(live, ["ok", "bad", "late"])
    sub = Reader(cli, "subscribe", "--until-exit")
    sub.wait_lines([rf"{name} +\| ready" for name in ("ok", "bad", "late")])
    go.touch()
    rc, lines, err = sub.finish()
    assert rc == 6, err
    assert b"".join(lines).decode().count("-- stopped") == 3
    assert live.finish() == 6


# depends_on conditions (SPEC 6): started, completed, succeeded; pending and skipped

WAIT_FOR = """
import os, sys, time
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
raise SystemExit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""
TOUCH = "import pathlib, sys; pathlib.Path(sys.argv[1]).touch()"


def gated(name: str, code: str, *args: str | Path, **keys: Any) -> str:
    """An [agents.NAME] table running ``code`` with arguments."""
    argv = [sys.executable, "-u", "-c", code, *map(str, args)]
    lines = [f"[agents.{name}]", f"command = {json.dumps(argv)}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def life(events: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """(processId, 'started' | 'stopped') -> seq of the first start and of the final stop."""
    out: dict[tuple[str, str], int] = {}
    for e in events:
        if e["type"] == "process-started":
            out.setdefault((e["processId"], "started"), e["seq"])
        elif e["type"] == "process-stopped" and not e["willRestart"]:
            out[(e["processId"], "stopped")] = e["seq"]
    return out


def test_depends_on_each_condition(cli: CLI, tmp_path: Path) -> None:
    """started: once the dependency runs (here it cannot end before its dependent
    starts: it waits for a file the dependent makes); completed and succeeded: after
    its exit."""
    go = tmp_path / "go"
    toml = write(
        tmp_path / "t.toml",
        gated("base", WAIT_FOR, go)
        + gated("opener", TOUCH, go, depends_on={"base": "started"})
        + gated("listed", "pass", depends_on=["base"])  # a plain list: started
        + gated("after", "pass", depends_on={"base": "completed"})
        + gated("checked", "pass", depends_on={"base": "succeeded", "opener": "completed"}),
    )
    status, events = up_run(cli, toml)
    assert status == 0
    seq = life(events)
    assert seq["base", "started"] < seq["opener", "started"] < seq["base", "stopped"]
    assert seq["base", "started"] < seq["listed", "started"]
    assert seq["base", "stopped"] < seq["after", "started"]
    assert max(seq["base", "stopped"], seq["opener", "stopped"]) < seq["checked", "started"]
    assert of(events, "system-alert") == []


def test_failed_dependency_skips_its_dependents(cli: CLI, tmp_path: Path) -> None:
    """succeeded on a dependency that exits 3: not started, state skipped, one
    dependency-failed alert each; completed still runs; `up` exits 3 (the skipped
    agents do not mask the failure that caused them)."""
    toml = write(
        tmp_path / "t.toml",
        agent("bad", "import time; time.sleep(0.3); raise SystemExit(3)")
        + agent("needs", "print('must not run')", depends_on={"bad": "succeeded"})
        + agent("chain", "print('must not run')", depends_on=["needs"])
        + agent("tidy", "print('cleaning up')", depends_on={"bad": "completed"}),
    )
    live = start_up(cli, toml, "--linger", "120")
    live.wait_event(lambda e: e["type"] == "process-stopped" and e["processId"] == "tidy")
    live.wait_event(lambda e: e.get("code") == "dependency-failed" and e["processId"] == "chain")
    states = {p["processId"]: p for p in ps_json(cli)}
    assert {n: p["state"] for n, p in states.items()} == {
        "bad": "failed",
        "needs": "skipped",
        "chain": "skipped",
        "tidy": "exited",
    }
    assert (states["needs"]["pid"], states["needs"]["exitCode"]) == (None, None)
    live.proc.send_signal(signal.SIGTERM)  # ends the linger
    assert live.finish() == 3
    events = live.events()
    assert {e["processId"] for e in of(events, "process-started")} == {"bad", "tidy"}
    alerts = {e["processId"]: e for e in of(events, "system-alert")}
    assert set(alerts) == {"needs", "chain"}
    assert alerts["needs"]["level"] == "error"
    assert alerts["needs"]["code"] == alerts["chain"]["code"] == "dependency-failed"
    assert "bad" in alerts["needs"]["message"]
    assert "exited with status 3" in alerts["needs"]["message"]
    assert "needs" in alerts["chain"]["message"]
    assert "skipped" in alerts["chain"]["message"]
    assert of(events, "process-stopped", "bad")[0]["seq"] < alerts["needs"]["seq"]


def test_pending_while_waiting_on_depends_on(cli: CLI, tmp_path: Path) -> None:
    """`ps` (the API) shows a waiting agent as pending, not started, until its
    dependency has exited 0."""
    go = tmp_path / "go"
    toml = write(
        tmp_path / "t.toml",
        gated("slow", WAIT_FOR, go) + gated("waiter", "pass", depends_on={"slow": "succeeded"}),
    )
    live = start_up(cli, toml)
    wait_ready(live, ["slow"])
    waiter = wait_state(cli, "waiter", "pending", timeout=10)
    assert (waiter["pid"], waiter["startedAt"], waiter["exitCode"]) == (None, None, None)
    res = client(cli, "ps")  # the table for people shows it too
    assert res.returncode == 0, res.stderr
    assert any(
        line.split()[:2] == ["waiter", "pending"] for line in res.stdout.decode().splitlines()
    )
    assert of(live.events(), "process-started", "waiter") == []
    go.touch()
    assert live.finish() == 0
    seq = life(live.events())
    assert seq["slow", "stopped"] < seq["waiter", "started"]


FLAKY = "print('trying', flush=True); raise SystemExit(2)"


def test_completed_waits_through_restarts(cli: CLI, tmp_path: Path) -> None:
    """completed waits for the final exit of a restart = "on-failure" dependency,
    after its last restart; succeeded on it is skipped."""
    toml = write(
        tmp_path / "t.toml",
        agent("flaky", FLAKY, restart="on-failure", max_restarts=2, backoff=0.2)
        + agent("report", "print('report')", depends_on={"flaky": "completed"})
        + agent("ship", "print('ship')", depends_on={"flaky": "succeeded"}),
    )
    status, events = up_run(cli, toml)
    assert status == 2  # flaky's, the first failure
    stops = of(events, "process-stopped", "flaky")
    assert [e["willRestart"] for e in stops] == [True, True, False]
    [report] = of(events, "process-started", "report")
    assert report["seq"] > stops[-1]["seq"]  # after the final exit, not the first
    assert of(events, "process-started", "ship") == []
    [alert] = of(events, "system-alert", "ship")
    assert alert["code"] == "dependency-failed"
