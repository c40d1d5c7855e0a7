"""Generate the shell completion scripts in this folder from the Typer app.

    python completions/generate.py            # rewrite the scripts
    python completions/generate.py --check    # exit 1 if one is stale

Each script is what ``agentwatch --show-completion`` prints for its shell
(typer's completion machinery: ``_AGENTWATCH_COMPLETE=source_SHELL``). The
scripts ask ``agentwatch`` itself for candidates as you type, so commands,
options, process names of the live run and run ids are always current;
regenerate only when typer changes its scripts (a test checks).

Install one by hand, or let agentwatch do it: ``agentwatch --install-completion``.

    bash  source completions/agentwatch.bash          (e.g. from ~/.bashrc)
    zsh   copy completions/_agentwatch into a folder of $fpath
    fish  copy completions/agentwatch.fish to ~/.config/fish/completions/
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROG = "agentwatch"
COMPLETE_VAR = "_AGENTWATCH_COMPLETE"
SCRIPTS = {"bash": "agentwatch.bash", "zsh": "_agentwatch", "fish": "agentwatch.fish"}


def script(shell: str) -> str:
    """The completion script for ``shell``, from the installed app."""
    env = {**os.environ, COMPLETE_VAR: f"source_{shell}"}
    result = subprocess.run(
        [sys.executable, "-m", PROG],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=HERE.parent,
    )
    return result.stdout.strip() + "\n"


def stale(folder: Path = HERE) -> list[str]:
    """The scripts in ``folder`` that differ from freshly generated ones."""
    return [
        name
        for shell, name in SCRIPTS.items()
        if not (folder / name).is_file() or (folder / name).read_text() != script(shell)
    ]


def generate(folder: Path = HERE) -> None:
    """Write every script into ``folder``."""
    for shell, name in SCRIPTS.items():
        (folder / name).write_text(script(shell))


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        old = stale()
        if old:
            print(f"stale: {', '.join(old)}; run: python completions/generate.py", file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    generate()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
