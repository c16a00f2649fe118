// The GraphQL operations the store sends: each one's document (from contract/operations.graphql)
// with its generated result and variables types. An operation renamed or removed in the contract,
// or a field the store reads changed, breaks the build here or where the field is used.

import type * as Contract from "./contract/graphql.js";
import type { NotificationPayload } from "./contract/socket-events.js";
import { DOCUMENTS } from "./contract/documents.js";

export interface Operations {
  GetNotifications: {
    result: Contract.GetNotificationsQuery;
    variables: Contract.GetNotificationsQueryVariables;
  };
  GetUnreadCount: {
    result: Contract.GetUnreadCountQuery;
    variables: Contract.GetUnreadCountQueryVariables;
  };
  Login: { result: Contract.LoginMutation; variables: Contract.LoginMutationVariables };
  Lead: { result: Contract.LeadQuery; variables: Contract.LeadQueryVariables };
  MarkAsRead: { result: Contract.MarkAsReadMutation; variables: Contract.MarkAsReadMutationVariables };
  MarkAllAsRead: {
    result: Contract.MarkAllAsReadMutation;
    variables: Contract.MarkAllAsReadMutationVariables;
  };
  DeleteNotification: {
    result: Contract.DeleteNotificationMutation;
    variables: Contract.DeleteNotificationMutationVariables;
  };
}

export type OperationName = keyof Operations;

export const OPERATION_DOCUMENTS: Record<OperationName, string> = DOCUMENTS;

/** A notification as GraphQL gives it, with its lead. */
export type Notification = Contract.GetNotificationsQuery["getNotifications"][number];
export type Lead = NonNullable<Notification["relatedLead"]>;

// A socket payload carries every field of a GraphQL notification but its lead: the store mixes
// the two. If the event schema and the SDL drift apart, this type stops the build.
type Assert<Holds extends true> = Holds;
export type PayloadMatchesGraphQL = Assert<
  NotificationPayload extends Omit<Notification, "relatedLead"> ? true : false
>;
