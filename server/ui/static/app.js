// The live notification page: GraphQL over fetch for reads and writes, Socket.IO for changes.
// Plain JavaScript, no build step. Every text from the server goes into the page through
// textContent, never as HTML. The token lives in sessionStorage: it ends with the tab.
"use strict";

(() => {
  const TOKEN_KEY = "crm.token";
  const EMAIL_KEY = "crm.email";
  const PAGE_SIZE = 50;

  const NOTIFICATION_FIELDS = `
    id type title message isRead relatedLeadId createdAt updatedAt cursor
    relatedLead { id firstName lastName company }`;
  const FEED = `query Feed($limit: Int, $before: String, $after: String) {
    getNotifications(limit: $limit, before: $before, after: $after) { ${NOTIFICATION_FIELDS} }
    getUnreadCount
  }`;
  const LOGIN = `mutation Login($input: LoginInput!) {
    login(input: $input) { token user { id email } }
  }`;
  const MARK_AS_READ = `mutation MarkAsRead($id: String!) {
    markAsRead(id: $id) { ${NOTIFICATION_FIELDS} }
  }`;
  const LEAD = `query Lead($id: Int!) { lead(id: $id) { id firstName lastName company } }`;
  const MARK_ALL_AS_READ = "mutation MarkAllAsRead { markAllAsRead }";
  const DELETE_NOTIFICATION = `mutation DeleteNotification($id: String!) {
    deleteNotification(id: $id)
  }`;

  const $ = (id) => document.getElementById(id);
  const ui = {
    signIn: $("sign-in"),
    signInForm: $("sign-in-form"),
    signInError: $("sign-in-error"),
    signInButton: $("sign-in-button"),
    email: $("email"),
    password: $("password"),
    session: $("session"),
    who: $("who"),
    connection: $("connection"),
    signOut: $("sign-out"),
    notifications: $("notifications"),
    badge: $("unread-badge"),
    markAll: $("mark-all-read"),
    feed: $("feed"),
    feedError: $("feed-error"),
    empty: $("feed-empty"),
    loadOlder: $("load-older"),
    template: $("notification-template"),
  };

  // The feed, newest first, keyed by id; the nodes that show it, keyed the same way.
  // `newestCursor`: where catch-up goes on from (docs/DELIVERY.md): the first row's cursor of
  // the first page or of the last catch-up page, or the cursor of the last created event.
  const state = {
    items: [], unread: 0, socket: null, connectedBefore: false, hasOlder: false, newestCursor: null,
  };
  const nodes = new Map();

  class AuthError extends Error {}

  // --- GraphQL ---------------------------------------------------------------------------

  async function graphql(query, variables = {}) {
    const headers = { "Content-Type": "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables }),
    });
    let body;
    try {
      body = await response.json();
    } catch {
      throw new Error(`the server answered ${response.status}`);
    }
    const errors = body.errors || [];
    if (errors.some((e) => e.extensions && e.extensions.code === "UNAUTHENTICATED")) {
      throw new AuthError(errors[0].message);
    }
    if (errors.length > 0) throw new Error(errors[0].message);
    return body.data;
  }

  // --- the feed --------------------------------------------------------------------------

  // Feed order: "createdAt" DESC, id DESC. The timestamps are fixed-width UTC strings, so
  // comparing them as text is comparing times.
  function newerFirst(a, b) {
    if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
    if (a.id === b.id) return 0;
    return a.id < b.id ? 1 : -1;
  }

  // Adds or replaces items. A socket payload has no relatedLead: keep the one already known
  // while the notification still points at the same lead.
  function upsert(incoming) {
    const byId = new Map(state.items.map((item) => [item.id, item]));
    for (const item of incoming) {
      const known = byId.get(item.id);
      const relatedLead =
        "relatedLead" in item
          ? item.relatedLead
          : known && known.relatedLeadId === item.relatedLeadId
            ? known.relatedLead
            : null;
      byId.set(item.id, { ...item, relatedLead });
    }
    state.items = [...byId.values()].sort(newerFirst);
  }

  function remove(id) {
    state.items = state.items.filter((item) => item.id !== id);
  }

  function setUnread(count) {
    state.unread = count;
    ui.badge.textContent = `${count} unread`;
    ui.badge.dataset.count = String(count);
    ui.markAll.disabled = count === 0;
  }

  function leadText(item) {
    const lead = item.relatedLead;
    if (lead) {
      const name = `${lead.firstName} ${lead.lastName}`;
      return lead.company ? `${name}, ${lead.company}` : name;
    }
    return item.relatedLeadId === null ? "" : `Lead #${item.relatedLeadId}`;
  }

  function fill(node, item) {
    node.dataset.id = item.id;
    node.classList.toggle("unread", !item.isRead);
    node.querySelector(".title").textContent = item.title;
    node.querySelector(".message").textContent = item.message;
    const time = node.querySelector("time");
    time.dateTime = item.createdAt;
    time.textContent = new Date(item.createdAt).toLocaleString();
    node.querySelector(".lead").textContent = leadText(item);
    const markRead = node.querySelector(".mark-read");
    markRead.hidden = item.isRead;
    markRead.setAttribute("aria-label", `Mark read: ${item.message}`);
    node.querySelector(".delete").setAttribute("aria-label", `Delete: ${item.message}`);
    node.dataset.version = `${item.updatedAt}|${item.isRead}|${leadText(item)}`;
  }

  // Keyed rendering: only new, changed, moved or removed rows touch the DOM, so the live
  // region announces what arrived rather than the whole list.
  function render() {
    const wanted = new Set(state.items.map((item) => item.id));
    for (const [id, node] of nodes) {
      if (!wanted.has(id)) {
        node.remove();
        nodes.delete(id);
      }
    }
    let previous = null;
    for (const item of state.items) {
      let node = nodes.get(item.id);
      if (node === undefined) {
        node = ui.template.content.firstElementChild.cloneNode(true);
        nodes.set(item.id, node);
      }
      if (node.dataset.version !== `${item.updatedAt}|${item.isRead}|${leadText(item)}`) {
        fill(node, item);
      }
      const expected = previous === null ? ui.feed.firstElementChild : previous.nextElementSibling;
      if (expected !== node) ui.feed.insertBefore(node, expected);
      previous = node;
    }
    ui.empty.hidden = state.items.length > 0;
    ui.loadOlder.hidden = !state.hasOlder;
  }

  function showError(error) {
    if (error instanceof AuthError) {
      signOut("Your session has ended: sign in again.");
      return;
    }
    ui.feedError.textContent = error.message;
  }

  async function loadFeed() {
    ui.feed.setAttribute("aria-busy", "true");
    try {
      const data = await graphql(FEED, { limit: PAGE_SIZE });
      state.items = [];
      state.newestCursor = data.getNotifications[0]?.cursor ?? null;
      upsert(data.getNotifications);
      state.hasOlder = data.getNotifications.length === PAGE_SIZE;
      setUnread(data.getUnreadCount);
      ui.feedError.textContent = "";
      render();
    } finally {
      ui.feed.setAttribute("aria-busy", "false");
    }
  }

  async function loadOlder() {
    const oldest = state.items[state.items.length - 1];
    if (!oldest) return;
    const data = await graphql(FEED, { limit: PAGE_SIZE, before: oldest.cursor });
    upsert(data.getNotifications);
    state.hasOlder = data.getNotifications.length === PAGE_SIZE;
    render();
  }

  // A socket payload names its lead by id only: look the lead up once, for the row's detail.
  const leads = new Map();
  async function describeLead(notification) {
    const id = notification.relatedLeadId;
    if (id === null) return;
    if (!leads.has(id)) leads.set(id, graphql(LEAD, { id }).then((data) => data.lead));
    let lead;
    try {
      lead = await leads.get(id);
    } finally {
      if (lead === undefined) leads.delete(id); // failed: ask again next time
    }
    const item = state.items.find((known) => known.id === notification.id);
    if (lead && item && item.relatedLeadId === id && !item.relatedLead) {
      upsert([{ ...item, relatedLead: lead }]);
      render();
    }
  }

  // After a reconnect: what committed meanwhile, from the newest cursor held, until a short
  // page; each page's first row carries the cursor to go on from.
  async function catchUp() {
    if (state.newestCursor === null) {
      await loadFeed();
      return;
    }
    for (let round = 0; round < 20; round += 1) {
      const data = await graphql(FEED, { limit: PAGE_SIZE, after: state.newestCursor });
      if (data.getNotifications.length > 0) state.newestCursor = data.getNotifications[0].cursor;
      upsert(data.getNotifications);
      setUnread(data.getUnreadCount);
      render();
      if (data.getNotifications.length < PAGE_SIZE) return;
    }
    await loadFeed(); // far behind: start again from the top
  }

  // --- Socket.IO -------------------------------------------------------------------------

  function setConnection(text, stateName) {
    ui.connection.textContent = text;
    ui.connection.dataset.state = stateName;
  }

  function connect(token) {
    // Same origin, default path /socket.io/; the token travels in the handshake.
    // WebSocket first (the server's fast broadcast path, and the only transport when it runs
    // several workers), long-polling only where a WebSocket cannot be opened.
    const socket = io({ auth: { token }, transports: ["websocket", "polling"], tryAllTransports: true });
    state.socket = socket;
    socket.on("connect", () => {
      setConnection("Live", "live");
      if (state.connectedBefore) catchUp().catch(showError);
      state.connectedBefore = true;
    });
    socket.on("disconnect", (reason) => {
      setConnection("Reconnecting…", "down");
      // The server ended the socket: its token expired, or the server is shutting down. Socket.IO
      // does not retry that by itself; the next handshake tells which (refused: sign in again).
      if (reason === "io server disconnect") {
        setTimeout(() => {
          if (state.socket === socket) socket.connect();
        }, 1000);
      }
    });
    socket.on("connect_error", (error) => {
      if (!socket.active) {
        signOut("Your session has ended: sign in again."); // refused at the handshake
        return;
      }
      setConnection(`Reconnecting… (${error.message})`, "down");
    });
    socket.on("notification:created", (notification) => {
      state.newestCursor = notification.cursor;
      upsert([notification]);
      render();
      describeLead(notification).catch(showError);
    });
    socket.on("notification:updated", (notification) => {
      if (state.items.some((item) => item.id === notification.id)) {
        upsert([notification]);
        render();
      }
    });
    socket.on("notification:deleted", ({ id }) => {
      remove(id);
      render();
    });
    socket.on("notifications:bulk-updated", () => loadFeed().catch(showError));
    socket.on("notifications:resync", () => loadFeed().catch(showError));
    socket.on("notifications:unread-count", ({ count }) => setUnread(count));
  }

  // --- sign in and out -------------------------------------------------------------------

  async function start() {
    ui.signIn.hidden = true;
    ui.notifications.hidden = false;
    ui.session.hidden = false;
    ui.who.textContent = sessionStorage.getItem(EMAIL_KEY) || "";
    setConnection("Connecting…", "connecting");
    try {
      await loadFeed();
    } catch (error) {
      showError(error);
      return;
    }
    connect(sessionStorage.getItem(TOKEN_KEY));
  }

  function signOut(message = "") {
    if (state.socket) {
      state.socket.removeAllListeners();
      state.socket.disconnect();
      state.socket = null;
    }
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(EMAIL_KEY);
    leads.clear();
    state.items = [];
    state.connectedBefore = false;
    state.hasOlder = false;
    render();
    ui.notifications.hidden = true;
    ui.session.hidden = true;
    ui.signIn.hidden = false;
    ui.signInError.textContent = message;
    ui.email.focus();
  }

  ui.signInForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    ui.signInError.textContent = "";
    const email = ui.email.value.trim();
    const password = ui.password.value;
    if (!email || !password) {
      ui.signInError.textContent = "Enter your email and password.";
      return;
    }
    ui.signInButton.disabled = true;
    try {
      sessionStorage.removeItem(TOKEN_KEY);
      const data = await graphql(LOGIN, { input: { email, password } });
      sessionStorage.setItem(TOKEN_KEY, data.login.token);
      sessionStorage.setItem(EMAIL_KEY, data.login.user.email);
      ui.password.value = "";
      await start();
    } catch (error) {
      ui.signInError.textContent = error.message;
    } finally {
      ui.signInButton.disabled = false;
    }
  });

  ui.signOut.addEventListener("click", () => signOut());

  ui.feed.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    const row = button && button.closest(".notification");
    if (!row) return;
    const id = row.dataset.id;
    button.disabled = true;
    try {
      if (button.classList.contains("mark-read")) {
        const data = await graphql(MARK_AS_READ, { id });
        upsert([data.markAsRead]);
      } else if (button.classList.contains("delete")) {
        await graphql(DELETE_NOTIFICATION, { id });
        remove(id);
      }
      ui.feedError.textContent = "";
      render();
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  });

  ui.markAll.addEventListener("click", async () => {
    ui.markAll.disabled = true;
    try {
      await graphql(MARK_ALL_AS_READ);
      // Every row is read now; the events that follow bring the count and any change.
      state.items = state.items.map((item) => ({ ...item, isRead: true }));
      ui.feedError.textContent = "";
      render();
    } catch (error) {
      showError(error);
    } finally {
      ui.markAll.disabled = state.unread === 0;
    }
  });

  ui.loadOlder.addEventListener("click", () => loadOlder().catch(showError));

  if (sessionStorage.getItem(TOKEN_KEY)) {
    start();
  } else {
    ui.email.focus();
  }
})();
