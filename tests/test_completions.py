"""Shell completions (SPEC 6): the scripts in completions/ are what the app
generates today, `--install-completion` works, and the installed bash
completion really completes commands, options and live process names."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import CLI, ROOT
from test_cli_support import VENV_BIN, start_run

pytestmark = pytest.mark.timeout(180)
FOLDER = ROOT / "completions"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate", FOLDER / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scripts_are_current(tmp_path: Path) -> None:
    gen = generator()
    gen.generate(tmp_path)
    for name in gen.SCRIPTS.values():
        fresh = (tmp_path / name).read_text()
        assert "agentwatch" in fresh
        assert "_AGENTWATCH_COMPLETE" in fresh
        committed = FOLDER / name
        assert committed.is_file(), f"missing {committed}: run python completions/generate.py"
        assert committed.read_text() == fresh, (
            f"{committed} is stale: run python completions/generate.py"
        )
    check = subprocess.run(
        [sys.executable, FOLDER / "generate.py", "--check"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def bash_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HOME=str(home), SHELL="/bin/bash", PATH=f"{VENV_BIN}{os.pathsep}{env['PATH']}")
    return env


def complete(env: dict[str, str], script: Path, words: str) -> list[str]:
    """Run the installed bash completion for the command line ``words``."""
    code = f"""
source {script}
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
[[ "{words}" == *" " ]] && COMP_CWORD=${{#COMP_WORDS[@]}}
_agentwatch_completion agentwatch
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    res = subprocess.run(
        ["bash", "--norc", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return [line for line in res.stdout.splitlines() if line]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_install_completion_for_bash(cli: CLI, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = bash_env(home)
    # bash is the parent, as in a terminal: typer detects the shell from its parents
    # ("; exit $?" keeps bash from exec-ing the command in its own place)
    res = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m agentwatch --install-completion; exit $?"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "bash completion installed" in res.stdout
    script = home / ".bash_completions" / "agentwatch.sh"
    assert script.is_file()
    assert f"source '{script}'" in (home / ".bashrc").read_text()
    assert script.read_text().strip() == (FOLDER / "agentwatch.bash").read_text().strip()

    assert "subscribe" in complete(env, script, "agentwatch su")
    assert complete(env, script, "agentwatch subscribe --tra") == ["--transport"]
    assert complete(env, script, "agentwatch subscribe --transport ") == ["ws", "sse"]
    assert complete(env, script, "agentwatch emit task-completed --task T --status s") == [
        "success"
    ]
    live = start_run(cli, "import time; print('up', flush=True); time.sleep(60)", name="builder")
    env["AGENTWATCH_HOME"] = str(cli.home)
    assert complete(env, script, "agentwatch stop bu") == ["builder"]
    assert complete(env, script, "agentwatch logs --run ") == [live.run_id]
    live.proc.terminate()
    live.finish()
