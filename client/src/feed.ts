// The feed as a value: rows newest first, keyed by id. Pure functions, no I/O.

import type { Lead, Notification } from "./operations.js";
import type { NotificationPayload } from "./contract/socket-events.js";

/**
 * A row of the feed. `relatedLead` is null until the lead is known: a socket payload names the
 * lead by `relatedLeadId` only, and the store looks it up.
 */
export interface FeedItem extends Omit<Notification, "relatedLead"> {
  readonly relatedLead: Lead | null;
}

/** A row as GraphQL gives it (with its lead) or as an event carries it (without). */
export type IncomingRow = Notification | NotificationPayload;

// Feed order: "createdAt" DESC, id DESC. The timestamps are fixed-width UTC strings, so comparing
// them as text is comparing times.
export function newerFirst(a: FeedItem, b: FeedItem): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
  if (a.id === b.id) return 0;
  return a.id < b.id ? 1 : -1;
}

function toItem(row: IncomingRow, known: FeedItem | undefined): FeedItem {
  let relatedLead: Lead | null = null;
  if ("relatedLead" in row) relatedLead = row.relatedLead;
  else if (known !== undefined && known.relatedLeadId === row.relatedLeadId) {
    relatedLead = known.relatedLead; // same lead as before: keep what we know of it
  }
  return {
    id: row.id,
    type: row.type,
    title: row.title,
    message: row.message,
    isRead: row.isRead,
    relatedLeadId: row.relatedLeadId,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    cursor: row.cursor,
    relatedLead,
  };
}

/**
 * Adds or replaces rows; the result is in feed order. With `olderExist` (the rows held are the
 * newest ones, and older ones exist), a new row older than the oldest held is left out: adding it
 * would skip the rows between, and loading older pages reads it where it belongs.
 */
export function upsert(
  items: readonly FeedItem[],
  incoming: readonly IncomingRow[],
  olderExist = false,
): FeedItem[] {
  const oldest = items.at(-1);
  const byId = new Map(items.map((item) => [item.id, item]));
  for (const row of incoming) {
    const known = byId.get(row.id);
    const item = toItem(row, known);
    if (known === undefined && olderExist && oldest !== undefined && newerFirst(item, oldest) > 0) {
      continue;
    }
    byId.set(row.id, item);
  }
  return [...byId.values()].sort(newerFirst);
}

export function without(items: readonly FeedItem[], id: string): FeedItem[] {
  return items.filter((item) => item.id !== id);
}

export function withLead(items: readonly FeedItem[], leadId: number, lead: Lead): FeedItem[] {
  return items.map((item) =>
    item.relatedLeadId === leadId && item.relatedLead === null ? { ...item, relatedLead: lead } : item,
  );
}
