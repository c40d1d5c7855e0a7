// Follow /ws with the npm `ws` client, drop the connection after SPLIT events,
// reconnect with `since` = the last seq seen, and stop at COUNT events.
// Prints every event as a JSON line, then a summary line; exits 1 on a gap or
// a duplicate.  usage: node ws_resume.js WS_URL COUNT SPLIT
'use strict';
const WebSocket = require('ws');

const [url, countArg, splitArg] = process.argv.slice(2);
const count = Number(countArg);
const split = Number(splitArg);
const seqs = [];
let connections = 0;

function fail(message) {
  process.stderr.write(message + '\n');
  process.exit(1);
}

function connect(since) {
  connections += 1;
  const ws = new WebSocket(url);
  let taken = 0;
  let active = true; // `ws` may still emit frames it had read before terminate()
  ws.on('open', () => ws.send(JSON.stringify({ op: 'subscribe', processId: '*', since })));
  ws.on('message', (data) => {
    if (!active) return;
    const msg = JSON.parse(data.toString());
    if (!Array.isArray(msg) && msg.seq === undefined) {
      if (msg.type !== 'subscribed') fail('unexpected control message ' + data);
      return;
    }
    for (const event of Array.isArray(msg) ? msg : [msg]) {
      const last = seqs.length ? seqs[seqs.length - 1] : since;
      if (event.seq !== last + 1) fail(`expected seq ${last + 1}, got ${event.seq}`);
      seqs.push(event.seq);
      taken += 1;
      process.stdout.write(JSON.stringify(event) + '\n');
      if (seqs.length >= count) {
        ws.close(1000);
        return;
      }
      if (connections === 1 && taken >= split) {
        active = false;
        ws.terminate(); // an abrupt drop, like a lost network
        connect(event.seq);
        return;
      }
    }
  });
  ws.on('error', (err) => fail('websocket error: ' + err.message));
  ws.on('close', () => {
    if (active && seqs.length >= count) {
      process.stdout.write(JSON.stringify({ done: true, connections, received: seqs.length }) + '\n');
      process.exit(0);
    }
  });
}

connect(0);
