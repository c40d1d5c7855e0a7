// Runs the useWebSocket() composable under Node (Vue's reactivity needs no DOM)
// against a live agentwatch, and reports what its refs do as JSON lines.
//
//   npm install                      # vue + socket.io-client, in examples/vue
//   node run.js --url http://127.0.0.1:PORT --token TOKEN --process builder --count 10
//
// Reports: {"kind":"connected","value":true|false}, {"kind":"error","message":..},
// {"kind":"ack","processId":..,"ack":{ok,lastSeq}}, {"kind":"event","name":..,"event":{..}}.
// After --count process-output events (default: never) it calls disconnect() and
// exits 0 once `connected` is false. A connect error (e.g. a bad token) exits 2.
// --polling: socket.io-client's default transports (polling, then WebSocket).
import { watch } from "vue";
import { useWebSocket } from "./useWebSocket.js";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const url = opt("--url", process.env.AGENTWATCH_URL || "http://127.0.0.1:8765");
const token = opt("--token", process.env.AGENTWATCH_TOKEN || "");
const userId = opt("--user", "vue-demo");
const processId = opt("--process", "*");
const count = Number(opt("--count", "0"));
const polling = args.includes("--polling");
const report = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const { connected, error, connect, disconnect, emit, on } = useWebSocket(url, {
  token,
  userId,
  ...(polling ? {} : { transports: ["websocket"] }),
  reconnection: false,
});

let received = 0;
let leaving = false;
on("process-output", (event) => {
  report({ kind: "event", name: "process-output", event });
  received += 1;
  if (count && received === count && !leaving) {
    leaving = true;
    disconnect();
  }
});
for (const name of ["process-started", "process-stopped", "task-assigned", "system-alert"]) {
  on(name, (event) => report({ kind: "event", name, event }));
}

watch(connected, (value) => {
  report({ kind: "connected", value });
  if (value) {
    emit("subscribe-process", processId, (ack) => report({ kind: "ack", processId, ack }));
  } else if (leaving) {
    process.exit(0);
  }
});
watch(error, (err) => {
  if (err) {
    report({ kind: "error", message: err.message });
    process.exit(2);
  }
});

connect();
