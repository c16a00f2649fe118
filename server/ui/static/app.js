// The live notification page: a view of the feed client package (client/, served from its build
// at /ui/client/). The store keeps the feed, the unread count and the connection equal to the
// database; this file only signs in and out, draws the store's snapshot and forwards clicks.
// Every text from the server goes into the page through textContent, never as HTML. The token
// lives in sessionStorage: it ends with the tab.

import { io } from "/ui/socket.io.esm.min.js";
import { createFeedStore, login } from "/ui/client/store.js";

const TOKEN_KEY = "crm.token";
const EMAIL_KEY = "crm.email";
const SESSION_ENDED = "Your session has ended: sign in again.";
const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  unauthorized: "Signed out",
  closed: "Signed out",
};

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

let store = null;
let markingAll = false;
const nodes = new Map(); // the rows drawn, by notification id

// --- drawing ---------------------------------------------------------------------------

function leadText(item) {
  const lead = item.relatedLead;
  if (lead) {
    const name = `${lead.firstName} ${lead.lastName}`;
    return lead.company ? `${name}, ${lead.company}` : name;
  }
  return item.relatedLeadId === null ? "" : `Lead #${item.relatedLeadId}`;
}

const version = (item) => `${item.updatedAt}|${item.isRead}|${leadText(item)}`;

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
  node.dataset.version = version(item);
}

// Keyed rendering: only new, changed, moved or removed rows touch the DOM, so the live region
// announces what arrived rather than the whole list.
function renderFeed(items) {
  const wanted = new Set(items.map((item) => item.id));
  for (const [id, node] of nodes) {
    if (!wanted.has(id)) {
      node.remove();
      nodes.delete(id);
    }
  }
  let previous = null;
  for (const item of items) {
    let node = nodes.get(item.id);
    if (node === undefined) {
      node = ui.template.content.firstElementChild.cloneNode(true);
      nodes.set(item.id, node);
    }
    if (node.dataset.version !== version(item)) fill(node, item);
    const expected = previous === null ? ui.feed.firstElementChild : previous.nextElementSibling;
    if (expected !== node) ui.feed.insertBefore(node, expected);
    previous = node;
  }
}

function render(snapshot) {
  renderFeed(snapshot.items);
  ui.feed.setAttribute("aria-busy", String(!snapshot.loaded));
  ui.empty.hidden = !snapshot.loaded || snapshot.items.length > 0;
  ui.loadOlder.hidden = !snapshot.hasOlder;
  ui.badge.textContent = `${snapshot.unreadCount} unread`;
  ui.badge.dataset.count = String(snapshot.unreadCount);
  ui.markAll.disabled = markingAll || snapshot.unreadCount === 0;
  ui.connection.textContent = CONNECTION_TEXT[snapshot.connection];
  ui.connection.dataset.state = snapshot.connection;
  if (snapshot.error) ui.feedError.textContent = snapshot.error.message;
  else if (snapshot.loaded) ui.feedError.textContent = "";
}

function showError(error) {
  if (error && error.name === "UnauthenticatedError") return; // the store signs out (below)
  ui.feedError.textContent = error.message;
}

// --- sign in and out -------------------------------------------------------------------

function start(token) {
  ui.signIn.hidden = true;
  ui.notifications.hidden = false;
  ui.session.hidden = false;
  ui.who.textContent = sessionStorage.getItem(EMAIL_KEY) || "";
  store = createFeedStore(io, { url: window.location.origin, token });
  store.subscribe(render);
  // The server refused the token (it expired, or was revoked): this page signs in again.
  store.onTokenExpired(() => {
    signOut(SESSION_ENDED);
    return null;
  });
  render(store.getSnapshot());
}

function signOut(message = "") {
  if (store !== null) {
    store.close();
    store = null;
  }
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(EMAIL_KEY);
  renderFeed([]);
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
    const session = await login({ url: window.location.origin, email, password });
    sessionStorage.setItem(TOKEN_KEY, session.token);
    sessionStorage.setItem(EMAIL_KEY, session.user.email);
    ui.password.value = "";
    start(session.token);
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
  if (!row || store === null) return;
  const id = row.dataset.id;
  button.disabled = true;
  try {
    if (button.classList.contains("mark-read")) await store.markAsRead(id);
    else if (button.classList.contains("delete")) await store.delete(id);
    ui.feedError.textContent = "";
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
});

ui.markAll.addEventListener("click", async () => {
  if (store === null) return;
  markingAll = true;
  ui.markAll.disabled = true;
  try {
    await store.markAllAsRead();
    ui.feedError.textContent = "";
  } catch (error) {
    showError(error);
  } finally {
    markingAll = false;
    if (store !== null) render(store.getSnapshot());
  }
});

ui.loadOlder.addEventListener("click", () => {
  if (store !== null) store.loadOlder().catch(showError);
});

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) start(saved);
else ui.email.focus();
