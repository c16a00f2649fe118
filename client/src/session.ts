// Signing in: the `login` mutation, for apps that have no token yet.

import type { LoginMutation } from "./contract/graphql.js";
import { type Fetch, GraphQLClient } from "./graphql.js";

export type Session = LoginMutation["login"];

export interface LoginOptions {
  /** The server's origin, as for `connect`. */
  readonly url: string;
  readonly email: string;
  readonly password: string;
  readonly fetch?: Fetch;
}

/** A token and its user; a wrong email or password rejects with a GraphQLError. */
export async function login(options: LoginOptions): Promise<Session> {
  const fetcher = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const api = new GraphQLClient(`${options.url.replace(/\/+$/, "")}/graphql`, () => "", fetcher);
  const input = { email: options.email, password: options.password };
  return (await api.request("Login", { input })).login;
}
