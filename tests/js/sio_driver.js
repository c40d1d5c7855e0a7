// A socket.io-client v4 peer driven by the agentwatch tests, one JSON line each way.
//
// Usage: node sio_driver.js URL OPTIONS_JSON
//   OPTIONS_JSON is passed to io(URL, options) as is (auth, transports, ...).
// stdin, one command per line:
//   {"op":"emit","args":[...],"ack":true}   emit; with ack, print the ack's arguments
//   {"op":"disconnect"}                     socket.disconnect()
//   {"op":"connect"}                        socket.connect()
//   {"op":"exit"}                           exit 0
// stdout, one report per line:
//   {"kind":"connect","id":..,"transport":"polling"|"websocket"}
//   {"kind":"connect_error","message":..,"data":..}
//   {"kind":"disconnect","reason":..}
//   {"kind":"upgrade","transport":"websocket"}
//   {"kind":"event","name":..,"args":[..]}
//   {"kind":"ack","seq":N,"args":[..]}      N counts emits with ack, from 1
"use strict";

const readline = require("readline");
const { io } = require("socket.io-client");

const [url, optionsJson] = process.argv.slice(2);
const options = JSON.parse(optionsJson || "{}");
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const socket = io(url, options);
socket.on("connect", () => {
  const engine = socket.io.engine;
  out({ kind: "connect", id: socket.id, transport: engine.transport.name });
  engine.once("upgrade", (transport) => out({ kind: "upgrade", transport: transport.name }));
});
socket.on("connect_error", (err) => out({ kind: "connect_error", message: err.message, data: err.data ?? null }));
socket.on("disconnect", (reason) => out({ kind: "disconnect", reason }));
socket.onAny((name, ...args) => out({ kind: "event", name, args }));

let acks = 0;
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.op === "emit") {
    if (cmd.ack) {
      const seq = ++acks;
      socket.emit(...cmd.args, (...args) => out({ kind: "ack", seq, args }));
    } else {
      socket.emit(...cmd.args);
    }
  } else if (cmd.op === "disconnect") {
    socket.disconnect();
  } else if (cmd.op === "connect") {
    socket.connect();
  } else if (cmd.op === "exit") {
    socket.close();
    process.exit(0);
  }
});
rl.on("close", () => process.exit(0));
