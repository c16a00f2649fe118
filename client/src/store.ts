// The feed store: the feed newest first, the unread count and the connection state, kept equal to
// the server's database by the client rules of docs/DELIVERY.md:
//   - load the feed; apply single-row events in the order they arrive;
//   - refetch on notifications:bulk-updated and notifications:resync;
//   - take the unread count from notifications:unread-count;
//   - after every (re)connect, catch up with getNotifications(after: <newest cursor held>) and
//     then refresh the rows already shown (catch-up returns only new rows).
// Everything that changes the feed runs through one serial queue, so events that arrive while a
// page is being read are applied after it, in order.
//
// This module imports nothing at run time but its own files: the Socket.IO client is passed in
// (index.ts passes socket.io-client's `io`; a page without a bundler passes the ESM build's).

import type { ManagerOptions, Socket, SocketOptions } from "socket.io-client";

import type {
  ClientToServerEvents,
  NotificationPayload,
  ServerToClientEvents,
} from "./contract/socket-events.js";
import { type FeedItem, type IncomingRow, upsert, withLead, without } from "./feed.js";
import { type Fetch, GraphQLClient, GraphQLError, UnauthenticatedError } from "./graphql.js";
import type { Lead, OperationName, Operations } from "./operations.js";
import { SerialQueue } from "./queue.js";

export type FeedSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
export type SocketOptionsFor = Partial<ManagerOptions & SocketOptions>;
/** socket.io-client's `io`, or anything that makes a socket the same way. */
export type SocketFactory = (url: string, options: SocketOptionsFor) => FeedSocket;

/**
 * - `connecting`: the first handshake is under way.
 * - `live`: connected; events arrive as they commit.
 * - `reconnecting`: the connection dropped; Socket.IO retries with backoff, and the store catches
 *   up when it is back.
 * - `unauthorized`: the server refused the token (expired, revoked, user gone). The store waits
 *   for `setToken` (or an `onTokenExpired` handler that returns a token).
 * - `closed`: `close()` was called.
 */
export type ConnectionState = "connecting" | "live" | "reconnecting" | "unauthorized" | "closed";

export interface FeedSnapshot {
  /** The feed, newest first ("createdAt" then id, descending). */
  readonly items: readonly FeedItem[];
  readonly unreadCount: number;
  /** The last page read was full: `loadOlder()` may find more. */
  readonly hasOlder: boolean;
  /** The first page has been read. */
  readonly loaded: boolean;
  readonly connection: ConnectionState;
  /** The last background refetch that failed (cleared by the next one that works). */
  readonly error: Error | null;
}

export interface FeedStoreOptions {
  /** The server's origin, e.g. `http://127.0.0.1:3001` (GraphQL at /graphql, Socket.IO at /socket.io/). */
  readonly url: string;
  /** A JWT from the `login` mutation. */
  readonly token: string;
  /** Rows per GraphQL page, 1–200 (default 50). */
  readonly pageSize?: number;
  /** Passed to Socket.IO (e.g. `transports: ["websocket"]` behind several workers). */
  readonly socketOptions?: SocketOptionsFor;
  /** Defaults to the global `fetch`. */
  readonly fetch?: Fetch;
}

export type FeedListener = (snapshot: FeedSnapshot) => void;
/** Answer with a new token (or a promise of one) to go on; null or nothing to stay signed out. */
export type TokenExpiredHandler = () => string | null | undefined | Promise<string | null | undefined>;

const DEFAULT_PAGE_SIZE = 50;
const MAX_CATCH_UP_PAGES = 20; // further behind than this: load again from the top
const SERVER_DISCONNECT_RETRY_MS = 1000;

export class FeedStore {
  private snapshot: FeedSnapshot = {
    items: [],
    unreadCount: 0,
    hasOlder: false,
    loaded: false,
    connection: "connecting",
    error: null,
  };
  private token: string;
  /** Where catch-up goes on from: the newest cursor held (docs/DELIVERY.md). */
  private newestCursor: string | null = null;
  private refetchIsLast = false;
  /** Pages a refetch reads: the first, and one more for each loadOlder() that found rows. */
  private pagesShown = 1;
  private closed = false;
  private readonly pageSize: number;
  private readonly queue: SerialQueue;
  private readonly api: GraphQLClient;
  private readonly socket: FeedSocket;
  private readonly listeners = new Set<FeedListener>();
  private readonly tokenExpiredHandlers = new Set<TokenExpiredHandler>();
  private readonly leads = new Map<number, Promise<Lead | null>>();

  constructor(options: FeedStoreOptions, io: SocketFactory) {
    const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 200) {
      throw new RangeError(`pageSize must be an integer from 1 to 200, not ${pageSize}`);
    }
    if (!options.token) throw new TypeError("a token is required: sign in with the login mutation");
    this.pageSize = pageSize;
    this.token = options.token;
    const origin = options.url.replace(/\/+$/, "");
    const fetcher = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.api = new GraphQLClient(`${origin}/graphql`, () => this.token, fetcher);
    this.queue = new SerialQueue((error) => this.backgroundFailed(error));
    this.queue.enqueue(() => this.reload());
    this.socket = io(origin, {
      // WebSocket first (the only transport behind `serve --workers N`), polling as a fallback.
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      ...options.socketOptions,
      // A function, so every reconnect sends the token held at that moment.
      auth: (send) => send({ token: this.token }),
    });
    this.listen(this.socket);
  }

  // --- reading --------------------------------------------------------------------------

  getSnapshot(): FeedSnapshot {
    return this.snapshot;
  }

  get items(): readonly FeedItem[] {
    return this.snapshot.items;
  }

  get unreadCount(): number {
    return this.snapshot.unreadCount;
  }

  get connection(): ConnectionState {
    return this.snapshot.connection;
  }

  /** Called with the new snapshot after every change; returns the function that unsubscribes. */
  subscribe(listener: FeedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called when the server refuses the token; a handler may answer with a new one. */
  onTokenExpired(handler: TokenExpiredHandler): () => void {
    this.tokenExpiredHandlers.add(handler);
    return () => this.tokenExpiredHandlers.delete(handler);
  }

  /** Resolves once every event received and every refetch started so far has been applied. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  // --- writing --------------------------------------------------------------------------

  /** Use another token from now on (after a new sign-in); reconnects with it. */
  setToken(token: string): void {
    if (this.closed) return;
    if (!token) throw new TypeError("setToken needs a token");
    this.token = token;
    if (this.socket.connected || !this.socket.active) {
      // The server checks the token at the handshake only: open a new one.
      this.socket.disconnect();
      this.socket.connect();
    } // else Socket.IO is already retrying, and its next handshake sends the new token.
  }

  /** The next page of older rows (no-op when there are none). */
  loadOlder(): Promise<void> {
    return this.queue.run(async () => {
      const oldest = this.snapshot.items.at(-1);
      if (oldest === undefined || this.closed) return;
      const page = await this.page({ before: oldest.cursor });
      if (page.length > 0) this.pagesShown += 1;
      this.set({ items: upsert(this.snapshot.items, page), hasOlder: page.length === this.pageSize });
    });
  }

  /** Marks one notification read; the row as the server returned it. */
  async markAsRead(id: string): Promise<FeedItem | undefined> {
    const row = (await this.call("MarkAsRead", { id })).markAsRead;
    return this.queue.run(() => {
      // Shown at once; its notification:updated follows. A change another writer made after
      // this one may have arrived first: the row's updatedAt tells, and the newer one stays.
      const shown = this.snapshot.items.find((item) => item.id === id);
      if (shown !== undefined && shown.updatedAt <= row.updatedAt) {
        this.set({ items: upsert(this.snapshot.items, [row]) });
      }
      return this.snapshot.items.find((item) => item.id === id);
    });
  }

  /**
   * Marks every unread notification read; how many changed. The feed follows from the events
   * the statement sends (a refetch, or one notification:updated): marking the rows here could
   * undo a later writer's change whose event arrived before this answer.
   */
  async markAllAsRead(): Promise<number> {
    const data = await this.call("MarkAllAsRead", {});
    return data.markAllAsRead;
  }

  /** Deletes one notification; false when it was already gone. */
  async delete(id: string): Promise<boolean> {
    const data = await this.call("DeleteNotification", { id });
    await this.queue.run(() => this.remove(id));
    return data.deleteNotification;
  }

  /** Disconnects for good; the snapshot stays as it was, with connection "closed". */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.removeAllListeners();
    this.socket.disconnect();
    this.set({ connection: "closed" });
    this.listeners.clear();
    this.tokenExpiredHandlers.clear();
  }

  // --- the socket -----------------------------------------------------------------------

  private listen(socket: FeedSocket): void {
    socket.on("connect", () => {
      this.set({ connection: "live" });
      // What committed while no socket listened, then what changed in the rows shown.
      this.apply(() => this.catchUpAndRefresh());
    });
    socket.on("disconnect", (reason) => {
      if (this.closed || this.snapshot.connection === "unauthorized") return;
      this.set({ connection: "reconnecting" });
      // The server ended the socket: its token expired, or it is shutting down. Socket.IO does not
      // retry that by itself; the next handshake tells which (refused: the token is over).
      if (reason === "io server disconnect") {
        setTimeout(() => {
          if (!this.closed && !socket.active) socket.connect();
        }, SERVER_DISCONNECT_RETRY_MS);
      }
    });
    socket.on("connect_error", () => {
      if (this.closed) return;
      if (!socket.active) this.tokenRefused(); // refused at the handshake: no retry will help
      else this.set({ connection: "reconnecting" });
    });
    socket.on("notification:created", (row) =>
      this.apply(() => {
        this.newestCursor = row.cursor;
        this.set({ items: upsert(this.snapshot.items, [row], this.snapshot.hasOlder) });
        this.describeLead(row);
      }),
    );
    socket.on("notification:updated", (row) =>
      this.apply(() => {
        // A row outside the pages held stays outside: loadOlder() reads it as it is then.
        if (this.snapshot.items.some((item) => item.id === row.id)) {
          this.set({ items: upsert(this.snapshot.items, [row]) });
        }
      }),
    );
    socket.on("notification:deleted", ({ id }) => this.apply(() => this.remove(id)));
    socket.on("notifications:bulk-updated", () => this.refetch());
    socket.on("notifications:resync", () => this.refetch());
    socket.on("notifications:unread-count", ({ count }) =>
      this.apply(() => this.set({ unreadCount: count })),
    );
  }

  private tokenRefused(): void {
    if (this.closed || this.snapshot.connection === "unauthorized") return;
    this.set({ connection: "unauthorized" });
    for (const handler of [...this.tokenExpiredHandlers]) {
      Promise.resolve()
        .then(handler)
        .then((token) => {
          if (token) this.setToken(token);
        })
        .catch((error: unknown) => this.set({ error: asError(error) }));
    }
  }

  // --- reading from GraphQL -------------------------------------------------------------

  private async call<Name extends OperationName>(
    name: Name,
    variables: Operations[Name]["variables"],
  ): Promise<Operations[Name]["result"]> {
    try {
      return await this.api.request(name, variables);
    } catch (error) {
      if (error instanceof UnauthenticatedError) this.tokenRefused();
      throw error;
    }
  }

  private async page(variables: { before?: string; after?: string }): Promise<readonly IncomingRow[]> {
    const data = await this.call("GetNotifications", { limit: this.pageSize, ...variables });
    return data.getNotifications;
  }

  /**
   * Skips a refetch when the last task queued is a refetch not yet started: that one reads after
   * this event, and nothing queued behind it would be applied over what it reads. (A refetch
   * with events queued behind it does not count: those events may be older than what it reads,
   * and a refetch must follow them.)
   */
  private refetch(): void {
    if (this.refetchIsLast) return;
    this.queue.enqueue(() => {
      this.refetchIsLast = false;
      return this.reload();
    });
    this.refetchIsLast = true;
  }

  /** Drops a row; below a page with older rows left, reads the page again (one refetch). */
  private remove(id: string): void {
    this.set({ items: without(this.snapshot.items, id) });
    if (this.snapshot.hasOlder && this.snapshot.items.length < this.pageSize) this.refetch();
  }

  /** Queues one event's change to the feed. */
  private apply(change: () => Promise<void> | void): void {
    this.refetchIsLast = false;
    this.queue.enqueue(change);
  }

  /**
   * Reads the feed from the top again: the first page, and as many older ones as loadOlder()
   * has read. Rows that events added beyond those pages are let go (loadOlder() reads them
   * again), so a refetch costs the same however long the store has been running.
   */
  private async reload(): Promise<void> {
    if (this.closed) return;
    const wanted = this.pageSize * this.pagesShown;
    const count = this.call("GetUnreadCount", {});
    count.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
    const rows: IncomingRow[] = [];
    let page: readonly IncomingRow[];
    do {
      const last = rows.at(-1);
      page = await this.page(last === undefined ? {} : { before: last.cursor });
      rows.push(...page);
    } while (page.length === this.pageSize && rows.length < wanted);
    const { getUnreadCount } = await count;
    if (this.closed) return;
    this.newestCursor = rows[0]?.cursor ?? null;
    this.set({
      items: upsert([], rows),
      unreadCount: getUnreadCount,
      hasOlder: page.length === this.pageSize,
      loaded: true,
      error: null,
    });
  }

  /** After a (re)connect: every row committed after the newest cursor, then the rows shown. */
  private async catchUpAndRefresh(): Promise<void> {
    if (this.closed) return;
    if (this.newestCursor !== null) {
      try {
        await this.catchUp(this.newestCursor);
      } catch (error) {
        // A cursor the server no longer accepts (JWT_SECRET rotated): loading again covers it.
        if (!(error instanceof GraphQLError && error.code === "BAD_USER_INPUT")) throw error;
      }
    }
    await this.reload();
  }

  private async catchUp(from: string): Promise<void> {
    let cursor = from;
    for (let round = 0; round < MAX_CATCH_UP_PAGES; round += 1) {
      const page = await this.page({ after: cursor });
      if (this.closed) return;
      const first = page[0];
      if (first !== undefined) cursor = this.newestCursor = first.cursor; // pages go furthest first
      this.set({ items: upsert(this.snapshot.items, page, this.snapshot.hasOlder) });
      if (page.length < this.pageSize) return;
    }
  }

  /** A socket payload names its lead by id only: look the lead up once, for the row's detail. */
  private describeLead(row: IncomingRow | NotificationPayload): void {
    const id = row.relatedLeadId;
    if (id === null || ("relatedLead" in row && row.relatedLead !== null)) return;
    let lead = this.leads.get(id);
    if (lead === undefined) {
      lead = this.call("Lead", { id }).then((data) => data.lead);
      this.leads.set(id, lead);
    }
    lead.then(
      (found) => {
        if (found !== null) {
          this.apply(() => this.set({ items: withLead(this.snapshot.items, id, found) }));
        }
      },
      () => this.leads.delete(id), // failed: ask again next time; the row shows its lead id
    );
  }

  // --- state ----------------------------------------------------------------------------

  private backgroundFailed(error: unknown): void {
    if (error instanceof UnauthenticatedError) return; // tokenRefused has said so
    this.set({ error: asError(error) });
  }

  private set(change: Partial<FeedSnapshot>): void {
    if (this.closed && change.connection !== "closed") return;
    this.snapshot = { ...this.snapshot, ...change };
    for (const listener of [...this.listeners]) {
      try {
        listener(this.snapshot);
      } catch (error) {
        queueMicrotask(() => {
          throw error; // a listener's bug is reported, and stops neither the store nor others
        });
      }
    }
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** A store that uses the given Socket.IO factory (`io` of socket.io-client, or its ESM build). */
export function createFeedStore(io: SocketFactory, options: FeedStoreOptions): FeedStore {
  return new FeedStore(options, io);
}

export type { FeedItem } from "./feed.js";
export type { Lead, Notification } from "./operations.js";
export { GraphQLError, UnauthenticatedError } from "./graphql.js";
export { login, type LoginOptions, type Session } from "./session.js";
