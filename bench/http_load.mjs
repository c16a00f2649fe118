// HTTP load for the API scenario: `concurrency` keep-alive connections, each sending the same
// POST back to back for `seconds`, after a short warm-up. Node's http client costs far less CPU
// per request than a Python client, so more of the machine's two cores go to the server.
//
//   node bench/http_load.mjs '{"url":U,"headers":{...},"body":"...","concurrency":32,"seconds":8}'
//
// Prints one JSON line: requests, errors (status != 200 or a GraphQL "errors" member),
// requests_per_s, p50_ms, p99_ms, max_ms, and sent (every request, the warm-up's included: what
// the server's CPU time over the whole load is divided by).
import http from "node:http";
import { performance } from "node:perf_hooks";

const options = JSON.parse(process.argv[2]);
const target = new URL(options.url);
const body = Buffer.from(options.body);
const headers = { ...options.headers, "content-type": "application/json", "content-length": body.length };
const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
const warmupMs = (options.warmup ?? 1) * 1000;

function post() {
  return new Promise((resolve) => {
    const request = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, method: "POST", headers, agent },
      (response) => {
        const chunks = [];
        response.on("data", (chunk) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          resolve(response.statusCode === 200 && !text.includes('"errors"'));
        });
        response.on("error", () => resolve(false));
      },
    );
    request.on("error", () => resolve(false));
    request.end(body);
  });
}

const latencies = [];
let errors = 0;
let sent = 0;
let measuring = false;

async function worker(deadline) {
  while (performance.now() < deadline) {
    const started = performance.now();
    const ok = await post();
    sent += 1;
    if (!measuring) continue;
    latencies.push(performance.now() - started);
    if (!ok) errors += 1;
  }
}

const start = performance.now();
const deadline = start + warmupMs + options.seconds * 1000;
const workers = Array.from({ length: options.concurrency }, () => worker(deadline));
let measuredFrom = start;
setTimeout(() => {
  measuring = true;
  measuredFrom = performance.now();
}, warmupMs);
await Promise.all(workers);
const elapsed = (performance.now() - measuredFrom) / 1000;
latencies.sort((a, b) => a - b);
const pick = (p) => latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)];
process.stdout.write(
  `${JSON.stringify({
    tool: `node ${process.version} http.Agent keep-alive`,
    concurrency: options.concurrency,
    requests: latencies.length,
    sent,
    errors,
    requests_per_s: latencies.length / elapsed,
    p50_ms: pick(0.5),
    p99_ms: pick(0.99),
    max_ms: latencies[latencies.length - 1],
  })}\n`,
);
agent.destroy();
