"""The pure core imports neither trio nor typer nor psutil (STYLE "three rings").

Checked on the source with `ast`: lazy imports inside functions count, and a
pure module may import other agentwatch modules only when they are pure too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "agentwatch"
FORBIDDEN = {"trio", "typer", "psutil", "trio_websocket", "asyncio", "click"}
PURE = sorted(
    [
        PACKAGE / "events.py",
        PACKAGE / "errors.py",
        PACKAGE / "exitcodes.py",
        PACKAGE / "config.py",
        PACKAGE / "policy.py",
        PACKAGE / "publishable.py",
        *(PACKAGE / "proto").glob("*.py"),
    ]
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


PURE_NAMES = {module_name(p) for p in PURE} | {"agentwatch"}


def imports_of(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Absolute names of every module ``source`` (the module ``module``) imports."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, mod] if mod else base)
            names.add(mod)
            # `from pkg import name` imports the submodule pkg.name when there is one
            names.update(f"{mod}.{a.name}" for a in node.names if mod.startswith("agentwatch"))
    return names


def violations(names: set[str]) -> list[str]:
    bad = [n for n in names if n.split(".")[0] in FORBIDDEN]
    for n in names:
        if n.split(".")[0] != "agentwatch" or n in PURE_NAMES:
            continue
        # `from agentwatch.events import Piece` lists agentwatch.events.Piece: fine
        if (
            n.rpartition(".")[0] in PURE_NAMES
            and not (PACKAGE.parent / (n.replace(".", "/") + ".py")).exists()
        ):
            continue
        bad.append(n)
    return sorted(bad)


def test_pure_modules_found() -> None:
    assert len(PURE) >= 6
    assert all(p.is_file() for p in PURE)


@pytest.mark.parametrize("path", PURE, ids=module_name)
def test_pure_module_imports(path: Path) -> None:
    names = imports_of(path.read_text(), module_name(path), is_package=path.name == "__init__.py")
    assert not violations(names), f"{module_name(path)} imports {violations(names)}"


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("import trio\n", ["trio"]),
        ("def f():\n    import psutil.tests\n", ["psutil.tests"]),
        ("from typer import Option\n", ["typer"]),
        ("from ..hub import Hub\n", ["agentwatch.hub", "agentwatch.hub.Hub"]),
        ("from agentwatch import supervisor\n", ["agentwatch.supervisor"]),
        ("from . import lines\nfrom ..events import Piece\nimport msgspec\n", []),
        ("from agentwatch.errors import ProtocolError\n", []),
    ],
)
def test_checker_catches(source: str, bad: list[str]) -> None:
    """The checker itself: lazy, relative and from-imports are all seen."""
    assert violations(imports_of(source, "agentwatch.proto.lines")) == bad


# The protocol codecs are held to more than "no trio": each may import only these
# top-level modules (stdlib pieces, msgspec, agentwatch itself).
CODEC_ALLOWED = {
    "sse.py": {"__future__", "codecs", "re", "dataclasses", "agentwatch"},
    "wsops.py": {"__future__", "re", "collections", "dataclasses", "typing", "msgspec",
                 "agentwatch"},
    "engineio.py": {"__future__", "base64", "binascii", "enum", "collections", "dataclasses",
                    "urllib", "functools", "typing", "msgspec", "agentwatch"},
    "socketio.py": {"__future__", "base64", "binascii", "enum", "collections", "dataclasses",
                    "urllib", "functools", "typing", "msgspec", "agentwatch"},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CODEC_ALLOWED))
def test_codec_imports_only_allowed(name: str) -> None:
    path = PACKAGE / "proto" / name
    roots = {n.split(".")[0] for n in imports_of(path.read_text(), module_name(path))}
    allowed = CODEC_ALLOWED[name]
    assert roots <= allowed, f"{name} imports {roots - allowed}"
