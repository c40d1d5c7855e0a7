"""``GET /metrics``: Prometheus text exposition format 0.0.4; no I/O.

Every metric has ``# HELP`` and ``# TYPE`` lines and the ``agentwatch_``
prefix. Per process: state (one labelled gauge, 1 for the current state),
restarts, lines and bytes by stream, CPU and RSS; run-wide: subscribers
(by transport), events published and sent, catch-ups, journal bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from agentwatch.hub import Hub
from agentwatch.supervisor import ManagedProcess, ProcState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TRANSPORTS = ("ws", "sse", "socketio")

Sample = tuple[dict[str, str], float]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        return str(int(value))
    return str(value) if isinstance(value, int) else repr(float(value))


def _family(
    out: list[str], name: str, kind: str, help_text: str, samples: Iterable[Sample]
) -> None:
    full = "agentwatch_" + name
    out.append(f"# HELP {full} {help_text}")
    out.append(f"# TYPE {full} {kind}")
    for labels, value in samples:
        if labels:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            out.append(f"{full}{{{text}}} {_number(value)}")
        else:
            out.append(f"{full} {_number(value)}")


def _process_families(out: list[str], procs: list[ManagedProcess]) -> None:
    _family(
        out,
        "process_state",
        "gauge",
        "1 for the state the process is in.",
        (
            ({"process": p.name, "state": s.value}, int(p.state is s))
            for p in procs
            for s in ProcState
        ),
    )
    _family(
        out,
        "process_restarts_total",
        "counter",
        "Times the process was restarted.",
        (({"process": p.name}, p.restarts) for p in procs),
    )
    _family(
        out,
        "process_lines_total",
        "counter",
        "Output lines read, by stream.",
        (({"process": p.name, "stream": s}, n) for p in procs for s, n in p.lines.items()),
    )
    _family(
        out,
        "process_output_bytes_total",
        "counter",
        "Output bytes read, by stream.",
        (({"process": p.name, "stream": s}, n) for p in procs for s, n in p.bytes.items()),
    )
    stats = [(p, p.stats) for p in procs if p.stats]
    _family(
        out,
        "process_cpu_percent",
        "gauge",
        "CPU use of the process tree, in percent.",
        (({"process": p.name}, s.get("cpuPercent", 0.0)) for p, s in stats),
    )
    _family(
        out,
        "process_rss_bytes",
        "gauge",
        "Resident memory of the process tree.",
        (({"process": p.name}, s.get("rssBytes", 0)) for p, s in stats),
    )


def render(hub: Hub, procs: Iterable[ManagedProcess]) -> bytes:
    """The whole exposition, newline-terminated."""
    out: list[str] = []
    _process_families(out, list(procs))
    by_transport = Counter(c.transport for c in hub.clients.values())
    transports = sorted(set(TRANSPORTS) | set(by_transport))
    _family(
        out,
        "subscribers",
        "gauge",
        "Connected subscribers, by transport.",
        (({"transport": t}, by_transport.get(t, 0)) for t in transports),
    )
    _family(
        out, "events_published_total", "counter", "Events published.", [({}, hub.events_published)]
    )
    _family(
        out, "events_sent_total", "counter", "Events sent to subscribers.", [({}, hub.events_sent)]
    )
    _family(
        out,
        "subscriber_catchups_total",
        "counter",
        "Times a subscriber fell behind the live queue and caught up from history.",
        [({}, hub.catchups)],
    )
    _family(out, "last_seq", "gauge", "The newest event sequence number.", [({}, hub.last_seq)])
    journal = hub.journal
    _family(
        out,
        "journal_bytes",
        "gauge",
        "Size of the journal file.",
        [({}, journal.size if journal is not None else 0)],
    )
    return ("\n".join(out) + "\n").encode()
