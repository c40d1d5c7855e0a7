"""Error answers of the server: the supervisor's ControlError mapped to 404/409/400
(status, code and message as sent), and a failing handler's 500 without its text."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from test_server_support import break_route, request, running_server

from agentwatch.config import AgentSpec
from agentwatch.errors import ControlConflict, ControlError, InvalidSignal, UnknownProcess
from agentwatch.server import api
from agentwatch.server.http import INTERNAL_ERROR_MESSAGE
from agentwatch.supervisor import ProcState


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (UnknownProcess("w"), 404, "not-found"),
        (ControlConflict("process 'w' is not running", name="w"), 409, "conflict"),
        (InvalidSignal("NOPE"), 400, "invalid-signal"),
        (ControlError("refused", name="w"), 409, "conflict"),
    ],
)
def test_control_error_answers(exc: ControlError, status: int, code: str) -> None:
    answer = api.control_error(exc)
    assert (answer.status, answer.code, str(answer)) == (status, code, str(exc))


async def test_control_errors_over_http(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            ctx.supervisor.add(AgentSpec(name="w", command=("true",))).state = ProcState.EXITED
            resp = await request(ctx, "GET", "/api/processes/nobody")
            assert (resp.status, resp.json()["error"]) == (
                404,
                {"code": "not-found", "message": "unknown process 'nobody'"},
            )
            resp = await request(ctx, "POST", "/api/processes/w/stop")
            assert (resp.status, resp.json()["error"]) == (
                409,
                {"code": "conflict", "message": "process 'w' is not running"},
            )
            resp = await request(ctx, "POST", "/api/processes/w/signal", body=b'{"signal":"NOPE"}')
            assert (resp.status, resp.json()["error"]) == (
                400,
                {"code": "invalid-signal", "message": "unknown signal 'NOPE'"},
            )


@pytest.mark.parametrize("debug", [False, True])
async def test_handler_exception_text_stays_out_of_the_500_body(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    debug: bool,
) -> None:
    secret = "secret-detail-/home/me/.token"

    if debug:
        monkeypatch.setenv("AGENTWATCH_DEBUG", "1")
    else:
        monkeypatch.delenv("AGENTWATCH_DEBUG", raising=False)
    break_route(monkeypatch, "/api/clients", RuntimeError(secret))
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            resp = await request(ctx, "GET", "/api/clients")
    assert resp.status == 500
    assert resp.json() == {"error": {"code": "internal-error", "message": INTERNAL_ERROR_MESSAGE}}
    assert secret not in resp.body.decode()
    assert "RuntimeError" not in resp.body.decode()
    err = capfd.readouterr().err
    assert secret in err  # the operator still sees it, on stderr
    assert ("Traceback (most recent call last)" in err) is debug
