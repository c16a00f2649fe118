// @crm-notifications/feed-client: `connect({ url, token })` and the store it returns.

import { io } from "socket.io-client";

import { FeedStore, type FeedSocket, type FeedStoreOptions } from "./store.js";

/** Opens the feed: reads the first page and keeps it equal to the server's database. */
export function connect(options: FeedStoreOptions): FeedStore {
  return new FeedStore(options, (url, socketOptions) => io(url, socketOptions) as FeedSocket);
}

export * from "./store.js";
export type {
  BulkAction,
  NotificationPayload,
  NotificationType,
  ServerToClientEventPayloads,
} from "./contract/socket-events.js";
