"""Socket.IO sessions: one Engine.IO session, its namespace ``/`` and its hub cursor.

A `Session` outlives the HTTP requests of long-polling, so it lives in the
per-server `SessionRegistry` (``ctx.socketio``) and its task (`Session.run`)
runs in the registry's nursery (`SessionRegistry.serve`, which the server
runs beside its accept loop): the server's cancellation cancels every
session, and a session that ends frees itself (registry entry, hub client,
tasks).

The session task holds two loops:

- *timers*: Engine.IO heartbeat (a PING every ``pingInterval``, the session
  closed when a PONG is ``pingTimeout`` late) and socket.io's connect timeout
  (a session that never joins ``/`` is closed);
- *delivery*: once the client joined ``/``, `follow` reads the hub from the
  client's one cursor through a `RoomFilter` and queues one ``42[...]`` frame
  per event in the `EngineSession`, splicing the event's journal JSON (never
  re-encoded). The sink then waits until the transport has written all that
  is queued, so a client costs at most about one poll response of memory
  (``maxPayload``), whatever the output rate, and the hub never waits.

The transports (`agentwatch.server.socketio`) only move frames: a polling GET
waits for `Session.changed`, drains, answers; a WebSocket writer does the same
on its socket. Everything a client sends goes through `Session.receive`, which
is synchronous, so the session's state never changes across an ``await``.

The namespace ``/``, its members and rooms are in
`agentwatch.server.socketio_rooms`.
"""

from __future__ import annotations

import secrets
from typing import Any

import trio

from agentwatch.errors import ProtocolError
from agentwatch.events import EventBatch, gap_message
from agentwatch.proto import socketio as sio
from agentwatch.proto.engineio import (
    EnginePacket,
    EngineSession,
    ErrorCode,
    Inbound,
    Transport,
    decode_packet,
    engine_error,
)
from agentwatch.server import socketio_rooms as rooms
from agentwatch.server.context import ServerContext
from agentwatch.server.follow import follow
from agentwatch.server.http import Request, log_error
from agentwatch.server.socketio_rooms import Member

SID_BYTES = 15  # 20 characters of URL-safe base64, as long as engine.io's ids
GOODBYE_S = 1.0  # as the server stops, how long a transport may take to flush the last frames
FAREWELL_WAIT_S = 5.0  # when the run is over, how long a client may take to collect the DISCONNECT
RUN_FINISHED = "run finished"
_DISCONNECT_FRAME = "4" + sio.encode(sio.SocketPacket(sio.PacketType.DISCONNECT))  # "41"


def new_sid() -> str:
    """A random session id (unguessable: it is the session's only credential)."""
    return secrets.token_urlsafe(SID_BYTES)


class _EngineSink:
    """`follow`'s sink: events become ``42["type",{...}]`` frames in the engine queue."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def send_events(self, batches: list[EventBatch]) -> None:
        """Queue one frame per event, then wait until the transport took them all."""
        engine = self.session.engine
        frame = sio.event_frame_from_json
        for batch in batches:
            kind = batch.type
            for line in batch.lines():
                engine.send_text(frame(kind, line))
        await self.session.wait_written()

    async def send_gap(self, from_seq: int, to_seq: int) -> None:
        """A ``gap`` event: ``{"type":"gap","fromSeq":a,"toSeq":b}``."""
        self.session.engine.send_text(
            sio.event_frame_from_json("gap", gap_message(from_seq, to_seq))
        )
        await self.session.wait_written()


class Session:
    """One Engine.IO session and the Socket.IO client on it (module docstring)."""

    def __init__(
        self,
        ctx: ServerContext,
        registry: SessionRegistry,
        transport: Transport,
        request: Request,
    ) -> None:
        limits = ctx.limits  # the socketio_* fields: timers and sizes
        self.ctx = ctx
        self.registry = registry
        self.limits = limits
        self.sid = new_sid()
        self.created = trio.current_time()
        self.engine = EngineSession(
            self.sid,
            transport,
            self.created,
            ping_interval_ms=limits.socketio_ping_interval_ms,
            ping_timeout_ms=limits.socketio_ping_timeout_ms,
            max_payload=limits.socketio_max_payload,
        )
        self.remote = request.remote
        self.authenticated = request.authenticated  # the handshake carried the token
        self.member: Member | None = None
        self.ever_joined = False
        self.disconnect_sent = False  # the server's DISCONNECT from "/" is queued
        self.frames_written = 0
        self.closed = trio.Event()
        self._changed = trio.Event()

    # -- wake-ups -------------------------------------------------------------

    def notify(self) -> None:
        """Wake every task waiting in `changed` (something was queued, drained or closed)."""
        self._changed.set()
        self._changed = trio.Event()

    async def changed(self) -> None:
        """Wait for the next `notify`."""
        await self._changed.wait()

    # -- frames out -------------------------------------------------------------

    def send_packet(self, packet: str) -> None:
        """Queue a Socket.IO packet (``0{...}``, ``3<id>[...]``) as an Engine.IO message."""
        self.engine.send_text("4" + packet)
        self.notify()

    def drain_for_poll(self) -> tuple[str, int]:
        """The body for a polling GET and how many frames it holds."""
        before = self.engine.queued_frames
        body = self.engine.drain_for_poll()
        return body, before - self.engine.queued_frames

    def written(self, frames: int) -> None:
        """The transport wrote ``frames`` drained frames to the client."""
        if frames:
            self.frames_written += frames
            self.notify()

    async def wait_written(self) -> None:
        """Wait until every frame queued now was written; ClosedResourceError once closed."""
        target = self.frames_written + self.engine.queued_frames
        self.notify()
        while self.frames_written < target:
            if self.engine.closed:
                raise trio.ClosedResourceError("Socket.IO session closed")
            await self._changed.wait()

    # -- packets in -------------------------------------------------------------

    def receive_frame(self, raw: str | bytes, via: Transport, authenticated: bool) -> Inbound:
        """`receive` for one undecoded WebSocket frame."""
        try:
            packet = decode_packet(raw)
        except ProtocolError as exc:
            if via is self.engine.transport:
                self.close(f"transport error: {exc}")
            raise
        return self.receive(packet, via, authenticated)

    def receive(self, packet: EnginePacket, via: Transport, authenticated: bool) -> Inbound:
        """Handle one Engine.IO packet from the client (a polling item or a WebSocket frame).

        ``authenticated``: the HTTP request it came with carried the token.
        Raises ProtocolError for a packet the client may not send; the session
        is then closed, unless it was the probing WebSocket's (the upgrade is
        cancelled instead).
        """
        try:
            inbound = self.engine.receive(packet, trio.current_time(), via)
        except ProtocolError as exc:
            if via is self.engine.transport:
                self.close(f"transport error: {exc}")
            raise
        if inbound.message is not None:
            self._on_message(inbound.message, authenticated or self.authenticated)
        if inbound.closed:
            self.close("client close")
        return inbound

    def _on_message(self, data: str | bytes, authenticated: bool) -> None:
        try:
            packet = sio.decode(data)
        except ProtocolError as exc:
            self.close(f"parse error: {exc}")
            return
        kind = packet.type
        if packet.namespace != "/":
            if kind is sio.PacketType.CONNECT:
                self.send_packet(sio.connect_error("Invalid namespace", packet.namespace))
            return
        if kind is sio.PacketType.CONNECT:
            self._join(packet.data, authenticated)
        elif kind is sio.PacketType.DISCONNECT:
            self._leave()
        elif kind is sio.PacketType.EVENT and self.member is not None:
            reply = rooms.on_event(self.ctx, self.member, packet.data[0], packet.data[1:])
            if packet.id is not None:
                self.send_packet(sio.ack(packet.id, reply))
        # ACKs (the server never asks for one) and events before CONNECT are ignored.

    def _join(self, auth: Any, authenticated: bool) -> None:
        """CONNECT to ``/``: check the token, register the client, answer."""
        if self.member is not None:
            self.send_packet(sio.connect_ok(self.member.sid))
            return
        auth = auth if isinstance(auth, dict) else {}
        if not rooms.authorized(self.ctx, auth, authenticated):
            self.send_packet(sio.connect_error("unauthorized"))
            return
        self.member = rooms.join(self.ctx, self.remote, auth, new_sid())
        self.ever_joined = True
        self.send_packet(sio.connect_ok(self.member.sid))

    def _leave(self) -> None:
        """The client left ``/`` (DISCONNECT, or the session ended): unregister it."""
        member, self.member = self.member, None
        if member is not None:
            rooms.leave(self.ctx, member)
            self.notify()

    # -- life cycle -------------------------------------------------------------

    def close(self, reason: str) -> None:
        """End the session: CLOSE is queued for the transport, the client and sid are freed."""
        if self.closed.is_set():
            return
        self.engine.close(reason)
        self._leave()
        self.registry.forget(self)
        self.closed.set()
        self.notify()

    def goodbye(self, reason: str) -> None:
        """Close from the server's side, after a DISCONNECT from ``/`` if the client joined it.

        socket.io-client reconnects after a lost transport, but not after the
        server's DISCONNECT ("io server disconnect"): the run is over, or the
        server is stopping.
        """
        if self.closed.is_set():
            return
        if self.member is not None and not self.disconnect_sent:
            self.engine.send_text(_DISCONNECT_FRAME)
        self.close(reason)

    def report_stalled(self) -> None:
        """The client read nothing for ``--client-timeout``: the slow-subscriber alert."""
        if self.member is not None:
            self.member.subscriber.report_stalled()

    async def run(self) -> None:
        """The session's task: timers and delivery until the session closes."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._timers)
                nursery.start_soon(self._deliver)
                await self.closed.wait()
                nursery.cancel_scope.cancel()
        except Exception as exc:  # a session must never take the server down
            log_error(f"Socket.IO session error: {type(exc).__name__}: {exc}")
        finally:
            self.goodbye("server stopped")  # the transports flush it as they are cancelled

    async def _timers(self) -> None:
        engine = self.engine
        connect_deadline = self.created + self.limits.socketio_connect_timeout
        while not engine.closed:
            deadline = engine.next_timer
            if not self.ever_joined:
                deadline = connect_deadline if deadline is None else min(deadline, connect_deadline)
            if deadline is None:
                return
            await trio.sleep_until(deadline)
            now = trio.current_time()
            if engine.is_timed_out(now):
                self.close("ping timeout")
            elif not self.ever_joined and now >= connect_deadline:
                self.close("connect timeout")
            elif engine.ping_if_due(now):
                self.notify()

    async def _deliver(self) -> None:
        sink = _EngineSink(self)
        hub = self.ctx.hub
        while not self.engine.closed:
            member = self.member
            if member is None:
                await self.changed()
                continue
            finished = False
            with member.scope:
                try:
                    await follow(
                        hub,
                        member.sub,
                        sink,
                        progress=member.subscriber.progress,
                        max_bytes=self.limits.socketio_read_bytes,
                    )
                except trio.ClosedResourceError:
                    return
                finished = True  # the run is over and the client has every event
            if finished:
                await self._farewell()
                return

    async def _farewell(self) -> None:
        """DISCONNECT the client from ``/``; close once it was written (or after a while)."""
        self.engine.send_text(_DISCONNECT_FRAME)
        self.disconnect_sent = True
        with trio.move_on_after(FAREWELL_WAIT_S):
            try:
                await self.wait_written()
            except trio.ClosedResourceError:
                pass
        self.close(RUN_FINISHED)


class SessionRegistry:
    """The open sessions of one server, by sid (``ctx.socketio``)."""

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self._nursery: trio.Nursery | None = None  # while `serve` runs: the sessions' tasks

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the sessions' tasks until cancelled: sessions outlive the requests opening them."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None

    def get(self, sid: str) -> Session:
        """The open session ``sid``; ProtocolError (engine.io code 1) if unknown."""
        session = self.sessions.get(sid)
        if session is None:
            raise engine_error(ErrorCode.UNKNOWN_SID)
        return session

    def open(self, ctx: ServerContext, transport: Transport, request: Request) -> Session:
        """Create a session and start its task (503 unless `serve` runs)."""
        nursery = self._nursery
        if nursery is None or ctx.shutting_down:
            raise ProtocolError("the server is shutting down", status=503, code="shutting-down")
        max_sessions = ctx.limits.socketio_max_sessions
        if len(self.sessions) >= max_sessions:
            raise ProtocolError(
                f"too many Socket.IO sessions (at most {max_sessions})",
                status=503,
                code="too-many-sessions",
            )
        session = Session(ctx, self, transport, request)
        self.sessions[session.sid] = session
        nursery.start_soon(session.run)
        return session

    def forget(self, session: Session) -> None:
        """Drop a closed session (its sid is unknown from now on)."""
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]


def registry_of(ctx: ServerContext) -> SessionRegistry:
    """The server's session registry, created on first use."""
    registry = ctx.socketio
    if registry is None:
        registry = ctx.socketio = SessionRegistry()
    return registry
