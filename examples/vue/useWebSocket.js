// useWebSocket(url, options): the original dashboard's Vue 3 composable, for agentwatch.
//
// It wraps a socket.io-client v4 socket connected to agentwatch's Socket.IO
// endpoint (`/socket.io/`, SPEC 4.3). The token travels in the Socket.IO
// CONNECT auth payload, `{token, userId}`, so the page needs no headers and
// the token never appears in a URL.
//
//   const { connected, error, connect, emit, on } = useWebSocket(url, { token, userId });
//   on("process-output", (e) => lines.push(`${e.processId} | ${e.output}`));
//   connect();
//   watch(connected, (up) => up && emit("subscribe-process", "builder"));
//
// Returns:
//   socket     read-only ref: the socket.io-client Socket (null before connect())
//   connected  read-only ref: true while the socket is connected to "/"
//   error      read-only ref: the last connect_error (err.message is "unauthorized"
//              for a bad token), null once connected
//   connect()     create the socket (once) or reconnect it
//   disconnect()  disconnect (also done when the calling component/scope is disposed)
//   emit(event, ...args)   e.g. emit("subscribe-process", id, (ack) => ...), ack {ok, lastSeq}
//   on(event, handler)     listen now and across reconnects; returns an unsubscribe function
//
// Options: token, userId, and any socket.io-client option (transports,
// reconnection, ...). Server events are named by the event type
// (`process-output`, `process-started`, `task-assigned`, `system-alert`, ...)
// and carry the event object.
import { computed, getCurrentScope, onScopeDispose, ref, shallowRef } from "vue";
import { io } from "socket.io-client";

export function useWebSocket(url, options = {}) {
  const { token, userId, ...ioOptions } = options;
  const socket = shallowRef(null);
  const connected = ref(false);
  const error = shallowRef(null);
  const handlers = new Set(); // [event, handler] pairs, bound to every socket created

  function connect() {
    if (socket.value) {
      socket.value.connect();
      return;
    }
    const s = io(url, { ...ioOptions, auth: { ...ioOptions.auth, token, userId } });
    s.on("connect", () => {
      connected.value = true;
      error.value = null;
    });
    s.on("disconnect", () => {
      connected.value = false;
    });
    s.on("connect_error", (err) => {
      connected.value = false;
      error.value = err;
    });
    for (const [event, handler] of handlers) s.on(event, handler);
    socket.value = s;
  }

  function disconnect() {
    if (socket.value) socket.value.disconnect();
    connected.value = false;
  }

  function emit(event, ...args) {
    if (!socket.value) throw new Error("useWebSocket: emit() before connect()");
    socket.value.emit(event, ...args);
  }

  function on(event, handler) {
    const pair = [event, handler];
    handlers.add(pair);
    if (socket.value) socket.value.on(event, handler);
    return () => {
      handlers.delete(pair);
      if (socket.value) socket.value.off(event, handler);
    };
  }

  if (getCurrentScope()) onScopeDispose(disconnect);

  return {
    socket: computed(() => socket.value),
    connected: computed(() => connected.value),
    error: computed(() => error.value),
    connect,
    disconnect,
    emit,
    on,
  };
}
