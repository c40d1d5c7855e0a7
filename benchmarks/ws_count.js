// Counts events on K batched /ws connections (the npm `ws` client, installed in
// tests/js by scripts/test.sh). Prints one JSON line when every connection has
// `want` output events:  node ws_count.js URL K WANT
const path = require('path');
const WebSocket = require(path.join(__dirname, '..', 'tests', 'js', 'node_modules', 'ws'));
const [url, k, want] = [process.argv[2], parseInt(process.argv[3]), parseInt(process.argv[4])];
const results = [];
let ready = 0;
for (let c = 0; c < k; c++) {
  const ws = new WebSocket(url, { maxPayload: 64 << 20 });
  let got = 0, t0 = 0;
  ws.on('open', () => {
    ws.send(JSON.stringify({ op: 'subscribe', processId: '*', since: 0, types: ['process-output'] }));
  });
  ws.on('message', (data) => {
    const s = data.toString();
    if (s[0] !== '[') { if (s.includes('"subscribed"') && ++ready === k) console.error('ready'); return; }
    if (!t0) t0 = process.hrtime.bigint();
    let i = -1; while ((i = s.indexOf('{"seq":', i + 1)) !== -1) got++;
    if (got >= want) {
      results.push({ events: got, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
      ws.close();
      if (results.length === k) { console.log(JSON.stringify(results)); process.exit(0); }
    }
  });
  ws.on('error', (e) => { console.error(String(e)); process.exit(1); });
}
