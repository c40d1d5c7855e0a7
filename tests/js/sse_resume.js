// Follow an SSE endpoint with the npm `eventsource` client. After SPLIT events
// the first response body fails as a dropped network would; EventSource
// reconnects by itself and sends Last-Event-ID. Prints every event as a JSON
// line, then a summary line; exits 1 on a gap or a duplicate.
// usage: node sse_resume.js URL COUNT SPLIT
'use strict';
const { EventSource } = require('eventsource');

const [url, countArg, splitArg] = process.argv.slice(2);
const count = Number(countArg);
const split = Number(splitArg);
const seqs = [];
const lastEventIdsSent = [];
let connections = 0;
let dropFirst = false;

function fail(message) {
  process.stderr.write(message + '\n');
  process.exit(1);
}

async function flakyFetch(input, init) {
  connections += 1;
  lastEventIdsSent.push((init.headers && init.headers['Last-Event-ID']) || null);
  const response = await fetch(input, init);
  if (connections > 1) return response;
  const reader = response.body.getReader();
  const body = new ReadableStream({
    async pull(controller) {
      const { value, done } = await reader.read();
      if (dropFirst) {
        reader.cancel().catch(() => {});
        controller.error(new TypeError('simulated network failure'));
      } else if (done) {
        controller.close();
      } else {
        controller.enqueue(value);
      }
    },
  });
  return new Response(body, { status: response.status, headers: response.headers });
}

const source = new EventSource(url, { fetch: flakyFetch });

function onEvent(event) {
  const data = JSON.parse(event.data);
  const last = seqs.length ? seqs[seqs.length - 1] : 0;
  if (data.seq !== last + 1) fail(`expected seq ${last + 1}, got ${data.seq}`);
  if (String(data.seq) !== event.lastEventId) fail(`id ${event.lastEventId} != seq ${data.seq}`);
  seqs.push(data.seq);
  process.stdout.write(JSON.stringify({ id: event.lastEventId, event: event.type, data }) + '\n');
  if (seqs.length === split) dropFirst = true;
  if (seqs.length >= count) {
    source.close();
    const summary = { done: true, connections, lastEventIdsSent, received: seqs.length };
    process.stdout.write(JSON.stringify(summary) + '\n');
    process.exit(0);
  }
}

for (const type of ['x-tick', 'process-output', 'message']) source.addEventListener(type, onEvent);
source.addEventListener('gap', (event) => fail('gap: ' + event.data));
