#!/usr/bin/env node
// The original dashboard's Socket.IO client, unchanged in substance, against agentwatch.
//
// It connects with socket.io-client v4 (auth: {userId, token}), subscribes
// to processes with `subscribe-process`, and prints what arrives: every
// `process-output` line, plus lifecycle events, tasks and alerts.
//
//   npm install socket.io-client@4          # once, here or anywhere on NODE_PATH
//   agentwatch run --name builder -- make   # prints its URL and token
//   AGENTWATCH_URL=http://127.0.0.1:PORT AGENTWATCH_TOKEN=TOKEN \
//     node examples/socketio_client.js builder
//
// Options: --url URL, --token T (default: $AGENTWATCH_URL, $AGENTWATCH_TOKEN),
// --user ID (default: $USER), --polling (socket.io-client's default transports:
// HTTP long-polling, then the upgrade to WebSocket; the original client used
// WebSocket only), --json (one event per line as JSON). No process names
// means every process ("*"). It exits 0 when the run is over (the server
// disconnects the client) and 1 when the token is refused.
"use strict";

const { io } = require("socket.io-client");

function parseArgs(argv) {
  const opts = {
    url: process.env.AGENTWATCH_URL || "http://127.0.0.1:8765",
    token: process.env.AGENTWATCH_TOKEN || "",
    userId: process.env.USER || "user",
    polling: false,
    json: false,
    processIds: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--url") opts.url = argv[++i];
    else if (arg === "--token") opts.token = argv[++i];
    else if (arg === "--user") opts.userId = argv[++i];
    else if (arg === "--polling") opts.polling = true;
    else if (arg === "--json") opts.json = true;
    else opts.processIds.push(arg);
  }
  if (opts.processIds.length === 0) opts.processIds.push("*");
  return opts;
}

function time(timestamp) {
  return String(timestamp).slice(11, 23); // HH:MM:SS.mmm of the RFC 3339 timestamp
}

const opts = parseArgs(process.argv.slice(2));
const print = (text) => process.stdout.write(text + "\n");

// --- the original design's client code -----------------------------------
const socket = io(opts.url, {
  auth: { userId: opts.userId, token: opts.token },
  ...(opts.polling ? {} : { transports: ["websocket"] }),
});

socket.on("connect", () => {
  if (!opts.json) console.error(`connected as ${opts.userId} (${socket.io.engine.transport.name})`);
  for (const processId of opts.processIds) {
    socket.emit("subscribe-process", processId, (ack) => {
      if (!ack.ok) console.error(`subscribe-process ${processId}: ${ack.error}`);
      else if (!opts.json) console.error(`subscribed to ${processId} at seq ${ack.lastSeq}`);
    });
  }
});

socket.on("process-output", (data) => {
  if (opts.json) print(JSON.stringify(data));
  else print(`${time(data.timestamp)} ${data.processId} | ${data.output}`);
});
// --------------------------------------------------------------------------

const lifecycle = {
  "process-started": (e) => `started pid ${e.pid}: ${e.command.join(" ")}`,
  "process-stopped": (e) => `stopped: ${e.signal || "exit " + e.exitCode}`,
  "process-error": (e) => `error (${e.kind}): ${e.error}`,
  "process-waiting": () => "waiting for input",
  "process-resumed": () => "resumed",
  "task-assigned": (e) => `task ${e.taskId} assigned to ${e.assignee || "?"}: ${e.title || ""}`,
  "task-completed": (e) => `task ${e.taskId} ${e.status}`,
  "system-alert": (e) => `[${e.level}] ${e.message}`,
  gap: (e) => `events ${e.fromSeq}..${e.toSeq} are no longer available`,
};
for (const [name, describe] of Object.entries(lifecycle)) {
  socket.on(name, (event) => {
    if (opts.json) print(JSON.stringify(event));
    else print(`${time(event.timestamp || "")} ${event.processId || "-"} * ${describe(event)}`);
  });
}

socket.on("connect_error", (err) => {
  console.error(`cannot connect: ${err.message}`);
  if (err.message === "unauthorized") process.exit(1);
});

socket.on("disconnect", (reason) => {
  if (!opts.json) console.error(`disconnected: ${reason}`);
  if (reason === "io server disconnect") process.exit(0); // the run is over
});
