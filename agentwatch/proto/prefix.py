"""Echo prefixes of `agentwatch up`: ``name | `` at every line start (SPEC 6).

Sans-IO: `Prefixer.feed` takes the bytes one agent wrote and returns the
bytes to echo on one output (agentwatch's stdout or its stderr). Names are
padded to the longest name, as `docker compose up` does, and coloured when
the output is a terminal. A piece without a newline continues its line: the
next piece of the same agent adds no prefix. When another agent writes
while a line is open, that line is ended first (a newline), so every
echoed line carries exactly one agent's name; the interrupted agent's next
piece starts a new, prefixed line.
"""

from __future__ import annotations

# docker compose's order: cyan, yellow, green, magenta, blue, then the bright ones
PALETTE = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")
SEPARATOR = " | "
RESET = "\x1b[0m"


class Prefixer:
    """Puts each agent's label at the start of its lines on one output."""

    def __init__(self, names: list[str] | tuple[str, ...] = (), *, colour: bool = False) -> None:
        self.colour = colour
        self._names: list[str] = []
        self._labels: dict[str, bytes] = {}
        self._open: str | None = None  # whose line is open (no newline yet), if any
        for name in names:
            self.add(name)

    def add(self, name: str) -> None:
        """Register an agent (its colour is its place in the order of registration)."""
        if name not in self._names:
            self._names.append(name)
            self._labels.clear()  # the padding may have changed

    def label(self, name: str) -> bytes:
        """``name | ``, padded to the longest registered name, coloured if asked."""
        label = self._labels.get(name)
        if label is None:
            self.add(name)
            width = max(len(n) for n in self._names)
            text = name.ljust(width) + SEPARATOR
            if self.colour:
                code = PALETTE[self._names.index(name) % len(PALETTE)]
                text = f"\x1b[{code}m{name.ljust(width)}{SEPARATOR.rstrip()}{RESET} "
            label = self._labels[name] = text.encode("utf-8", "replace")
        return label

    def feed(self, name: str, data: bytes) -> bytes:
        """The bytes to echo for ``data`` written by agent ``name``."""
        if not data:
            return b""
        label = self.label(name)
        head = b""
        if self._open is not None and self._open != name:
            head = b"\n"  # end the other agent's open line
            self._open = None
        if self._open is None:
            head += label
        self._open = None if data.endswith(b"\n") else name
        return head + data[:-1].replace(b"\n", b"\n" + label) + data[-1:]
