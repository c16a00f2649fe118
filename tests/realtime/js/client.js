// The official Socket.IO client, for the end-to-end tests: connects to URL with TOKEN and prints
// every event it receives as one JSON line. It stops when its standard input closes, when the
// server disconnects it, or after SECONDS at most, so a test can never hang on it.
//
// usage: node client.js URL TOKEN [auth|header] [SECONDS]
"use strict";

const { io } = require("socket.io-client");

const [url, token, mode = "auth", seconds = "20"] = process.argv.slice(2);
const options = { reconnection: false, timeout: 10000 };
if (mode === "auth") {
  options.auth = { token };
} else if (mode === "header") {
  options.extraHeaders = { Authorization: `Bearer ${token}` };
} else {
  throw new Error(`unknown mode ${mode}`);
}

const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
let finished = false;
const finish = (code) => {
  if (finished) return;
  finished = true;
  socket.close();
  // Let stdout drain before leaving.
  process.stdout.write("", () => process.exit(code));
};

const socket = io(url, options);
socket.on("connect", () => print({ event: "connect", transport: socket.io.engine.transport.name }));
socket.on("connect_error", (error) => {
  print({ event: "connect_error", message: error.message });
  finish(1);
});
socket.on("disconnect", (reason) => {
  print({ event: "disconnect", reason });
  finish(0);
});
socket.onAny((event, data) => print({ event, data }));

process.stdin.on("end", () => finish(0));
process.stdin.resume();
setTimeout(() => finish(0), Number(seconds) * 1000).unref();
