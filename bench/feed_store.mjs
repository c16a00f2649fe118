// One feed store of the built client package (@crm-notifications/feed-client) in its own process,
// for bench/feed_store.py (tests/client and bench.delivery_model): Python writes to the database
// and breaks things, this process keeps the store and answers questions about it.
//
// usage: node feed_store.mjs URL TOKEN PAGE_SIZE [MAX_SECONDS]
// stdin:  one JSON command per line: {"seq": 1, "cmd": "snapshot" | "idle" | "markAsRead" |
//         "markAllAsRead" | "delete" | "loadOlder" | "dropConnection" | "setToken", ...}
// stdout: one JSON line per answer ({"seq", "ok": true, "result"} or {"seq", "ok": false, "error"})
//         and per happening ({"event": "connection", "state"}, {"event": "loaded"},
//         {"event": "token-expired"}).
// It exits when stdin closes, or after MAX_SECONDS (default 120) at most: nothing hangs on it.

import { createInterface } from "node:readline";

import { createFeedStore } from "@crm-notifications/feed-client";
import { io } from "socket.io-client";

const [url, token, pageSize, maxSeconds = "120"] = process.argv.slice(2);
const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

// The store's own factory is socket.io-client's io; this one also keeps the socket, so that
// dropConnection can cut its transport the way a network failure does.
let socket = null;
const received = []; // the names of the events received, for a failing test's message
const store = createFeedStore(
  (socketUrl, options) => {
    socket = io(socketUrl, { ...options, reconnectionDelayMax: 1000 });
    socket.onAny((name, payload) => {
      const row = payload && payload.id ? `:${payload.message ?? payload.id.slice(0, 8)}${payload.isRead ? "" : "*"}` : "";
      received.push(`${name}${row}`);
    });
    return socket;
  },
  { url, token, pageSize: Number(pageSize) },
);

let connection = store.connection;
let loaded = false;
store.subscribe((snapshot) => {
  if (snapshot.connection !== connection) {
    connection = snapshot.connection;
    print({ event: "connection", state: connection });
  }
  if (snapshot.loaded && !loaded) {
    loaded = true;
    print({ event: "loaded" });
  }
});
store.onTokenExpired(() => {
  print({ event: "token-expired" });
  return null; // the test answers with a setToken command
});

function snapshot() {
  const { items, unreadCount, hasOlder, loaded, connection: state, error } = store.getSnapshot();
  return {
    items: items.map((item) => ({
      id: item.id,
      isRead: item.isRead,
      message: item.message,
      relatedLeadId: item.relatedLeadId,
      leadName: item.relatedLead && `${item.relatedLead.firstName} ${item.relatedLead.lastName}`,
    })),
    unreadCount,
    hasOlder,
    loaded,
    connection: state,
    error: error && error.message,
    received: received.join(" "),
  };
}

const commands = {
  snapshot: async () => snapshot(),
  idle: async () => {
    await store.idle();
    return snapshot();
  },
  markAsRead: async ({ id }) => (await store.markAsRead(id))?.isRead ?? null,
  markAllAsRead: async () => store.markAllAsRead(),
  delete: async ({ id }) => store.delete(id),
  loadOlder: async () => {
    await store.loadOlder();
    return snapshot();
  },
  dropConnection: async () => {
    socket.io.engine.close(); // as when the network drops: Socket.IO reconnects by itself
    return null;
  },
  setToken: async ({ token: fresh }) => store.setToken(fresh) ?? null,
};

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  const { seq, cmd, ...args } = JSON.parse(line);
  try {
    print({ seq, ok: true, result: await commands[cmd](args) });
  } catch (error) {
    print({ seq, ok: false, error: `${error.name}: ${error.message}` });
  }
});
lines.on("close", () => {
  store.close();
  process.stdout.write("", () => process.exit(0));
});
setTimeout(() => {
  store.close();
  process.exit(2);
}, Number(maxSeconds) * 1000).unref();
