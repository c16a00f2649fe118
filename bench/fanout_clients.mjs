// Fan-out load: C Socket.IO clients (the official JavaScript client, websocket transport only)
// driven by the Python benchmark over stdin/stdout, one JSON object per line each way.
//
// Latency needs one clock for writer and receivers. The writer puts its send time (ms since
// the epoch, from the machine's real-time clock) into the lead's last name just before it sends
// the write; here the receipt time comes from the same clock (performance.timeOrigin +
// performance.now()), so latency = receipt - send is one subtraction, per delivery, in node.
//
// Commands:  {"cmd":"connect","url":U,"token":T,"count":C}  open C sockets (forceNew each)
//            {"cmd":"start","tag":G,"leads":N}               count deliveries of run G (N leads)
//            {"cmd":"status"}                                 deliveries so far
//            {"cmd":"report"}                                 latency summary of the run
//            {"cmd":"disconnect"}                             close every socket
//            {"cmd":"exit"}
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import { io } from "socket.io-client";

const EVENT = "notification:created";
// "bench-<tag> <seq>@<sendMs>+<lateMs> added to pipeline": lateMs is how far behind its schedule
// a paced writer sent the lead (its previous write had not returned in time). Latency from the
// scheduled send adds it back: a server that answers slowly holds the writer back, and timing
// from the actual send would leave that wait out (coordinated omission).
const MESSAGE = /^bench-(\S+) (\d+)@(\d+(?:\.\d+)?)(?:\+(\d+(?:\.\d+)?))? /;

let sockets = [];
let run = null;

function now() {
  return performance.timeOrigin + performance.now();
}

function reply(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

function newRun(tag, leads) {
  const expected = leads * sockets.length;
  return {
    tag,
    leads,
    expected,
    latencies: new Float64Array(expected),
    scheduled: new Float64Array(expected), // from the scheduled send (late time added back)
    seen: new Uint8Array(expected), // one flag per (socket, lead): duplicates are not counted
    delivered: 0,
    duplicates: 0,
    stray: 0,
    firstReceipt: Infinity,
    lastReceipt: 0,
    firstSend: Infinity,
  };
}

function onNotification(index, payload) {
  const r = run;
  if (r === null || typeof payload?.message !== "string") return;
  const received = now();
  const match = MESSAGE.exec(payload.message);
  if (match === null || match[1] !== r.tag) {
    r.stray += 1;
    return;
  }
  const seq = Number(match[2]);
  const sent = Number(match[3]);
  const late = match[4] === undefined ? 0 : Number(match[4]);
  if (seq >= r.leads) {
    r.stray += 1;
    return;
  }
  const slot = index * r.leads + seq;
  if (r.seen[slot]) {
    r.duplicates += 1;
    return;
  }
  r.seen[slot] = 1;
  r.latencies[r.delivered] = received - sent;
  r.scheduled[r.delivered] = received - sent + late;
  r.delivered += 1;
  if (received < r.firstReceipt) r.firstReceipt = received;
  if (received > r.lastReceipt) r.lastReceipt = received;
  if (sent < r.firstSend) r.firstSend = sent;
}

function connectOne(url, token, index) {
  return new Promise((resolve, reject) => {
    const socket = io(url, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      auth: { token },
      timeout: 20000,
    });
    socket.on(EVENT, (payload) => onNotification(index, payload));
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (error) => {
      socket.close();
      reject(error);
    });
  });
}

async function connect(url, token, count) {
  const started = now();
  const batch = 50; // handshakes in flight at once
  for (let i = sockets.length; i < count; i += batch) {
    const opening = [];
    for (let j = i; j < Math.min(count, i + batch); j += 1) {
      opening.push(connectOne(url, token, j));
    }
    sockets.push(...(await Promise.all(opening)));
  }
  return now() - started;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

function report() {
  const r = run;
  if (r === null) return { error: "no run" };
  const sorted = r.latencies.slice(0, r.delivered).sort();
  const fromSchedule = r.scheduled.slice(0, r.delivered).sort();
  const span = (r.lastReceipt - r.firstSend) / 1000;
  return {
    tag: r.tag,
    sockets: sockets.length,
    expected: r.expected,
    delivered: r.delivered,
    duplicates: r.duplicates,
    stray: r.stray,
    p50_ms: percentile(sorted, 50),
    p95_ms: percentile(sorted, 95),
    p99_ms: percentile(sorted, 99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : null,
    scheduled_p50_ms: percentile(fromSchedule, 50),
    scheduled_p99_ms: percentile(fromSchedule, 99),
    span_s: r.delivered ? span : null,
    deliveries_per_s: r.delivered && span > 0 ? r.delivered / span : null,
  };
}

async function handle(line) {
  const message = JSON.parse(line);
  switch (message.cmd) {
    case "connect": {
      const ms = await connect(message.url, message.token, message.count);
      reply({ ok: "connect", sockets: sockets.length, ms });
      break;
    }
    case "start":
      run = newRun(message.tag, message.leads);
      reply({ ok: "start", expected: run.expected });
      break;
    case "status":
      reply({ ok: "status", delivered: run ? run.delivered : 0, expected: run ? run.expected : 0 });
      break;
    case "report":
      reply({ ok: "report", ...report() });
      run = null;
      break;
    case "disconnect":
      for (const socket of sockets) socket.close();
      sockets = [];
      reply({ ok: "disconnect" });
      break;
    case "exit":
      for (const socket of sockets) socket.close();
      reply({ ok: "exit" });
      process.exit(0);
      break;
    default:
      reply({ error: `unknown command ${message.cmd}` });
  }
}

// Commands run one at a time, in order.
let queue = Promise.resolve();
createInterface({ input: process.stdin }).on("line", (line) => {
  queue = queue.then(() =>
    handle(line).catch((error) => reply({ error: String(error?.message ?? error) })),
  );
});
process.stdin.on("end", () => process.exit(0));
