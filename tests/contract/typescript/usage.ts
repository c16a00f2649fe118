// What a front-end developer writes with the generated types; tsc must accept it as it is.
// The @ts-expect-error lines must stay errors: they prove the types are strict, not `any`.

import { io, type Socket } from "socket.io-client";

import type {
  GetNotificationsQuery,
  GetNotificationsQueryVariables,
  LoginMutationVariables,
  MarkAllAsReadMutation,
} from "../../../contract/generated/graphql";
import type { Notification } from "../../../contract/generated/graphql-schema";
import type {
  ClientToServerEvents,
  NotificationPayload,
  ServerToClientEvents,
} from "../../../contract/generated/socket-events";

const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io("http://localhost:3001", {
  auth: { token: "a JWT from login" },
});

let feed: NotificationPayload[] = [];
let unread = 0;

socket.on("notification:created", (notification) => {
  feed = [notification, ...feed];
  const newest: string = notification.cursor;
  void newest;
});
socket.on("notification:updated", (notification) => {
  feed = feed.map((item) => (item.id === notification.id ? notification : item));
});
socket.on("notification:deleted", ({ id }) => {
  feed = feed.filter((item) => item.id !== id);
});
socket.on("notifications:bulk-updated", ({ action, count }) => {
  const known: "mark-all-read" | "bulk-create" | "bulk-update" | "bulk-delete" = action;
  void known;
  void count;
});
socket.on("notifications:resync", () => {
  feed = [];
});
socket.on("notifications:unread-count", ({ count }) => {
  unread = count;
});
// @ts-expect-error: the server sends no such event
socket.on("notification:renamed", () => undefined);
// @ts-expect-error: the count is a number
socket.on("notifications:unread-count", ({ count }: { count: string }) => count);

const login: LoginMutationVariables = { input: { email: "ada@example.com", password: "secret" } };
const page: GetNotificationsQueryVariables = { limit: 50, after: feed[0]?.cursor ?? null };
// @ts-expect-error: limit is an Int
const wrongPage: GetNotificationsQueryVariables = { limit: "50" };

function render(result: GetNotificationsQuery): string[] {
  return result.getNotifications.map(
    (item) => `${item.title}: ${item.message} (${item.relatedLead?.company ?? "no lead"})`,
  );
}

function sameShape(event: NotificationPayload): Omit<Notification, "__typename" | "relatedLead"> {
  return event; // a socket payload is GraphQL's Notification less relatedLead
}

const changed: MarkAllAsReadMutation = { markAllAsRead: 3 };

export { changed, login, page, render, sameShape, unread, wrongPage };
