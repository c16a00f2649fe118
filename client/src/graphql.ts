// GraphQL over fetch: one POST per operation, the token as a bearer header. Errors keep the
// server's code (extensions.code), so the store can tell an ended session from anything else.

import { OPERATION_DOCUMENTS, type OperationName, type Operations } from "./operations.js";

const REQUEST_TIMEOUT_MS = 30_000;

export class GraphQLError extends Error {
  constructor(
    message: string,
    readonly code: string | null,
  ) {
    super(message);
    this.name = "GraphQLError";
  }
}

/** The server refused the token: it expired, was revoked, or its user is gone. */
export class UnauthenticatedError extends GraphQLError {
  constructor(message: string) {
    super(message, "UNAUTHENTICATED");
    this.name = "UnauthenticatedError";
  }
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export type Fetch = (input: string, init: RequestInit) => Promise<Response>;

export class GraphQLClient {
  constructor(
    private readonly endpoint: string,
    private readonly token: () => string,
    private readonly fetcher: Fetch,
  ) {}

  async request<Name extends OperationName>(
    name: Name,
    variables: Operations[Name]["variables"],
  ): Promise<Operations[Name]["result"]> {
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    const token = this.token();
    if (token) headers["Authorization"] = `Bearer ${token}`;
    const response = await this.fetcher(this.endpoint, {
      method: "POST",
      // A request that never ends would hold up every event queued behind it.
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      headers,
      body: JSON.stringify({ query: OPERATION_DOCUMENTS[name], variables, operationName: name }),
    });
    let body: GraphQLResponse<Operations[Name]["result"]>;
    try {
      body = (await response.json()) as GraphQLResponse<Operations[Name]["result"]>;
    } catch {
      throw new GraphQLError(`the server answered ${response.status}`, null);
    }
    const [error] = body.errors ?? [];
    if (error !== undefined) {
      const code = error.extensions?.code ?? null;
      if (code === "UNAUTHENTICATED") throw new UnauthenticatedError(error.message);
      throw new GraphQLError(error.message, code);
    }
    if (body.data == null) throw new GraphQLError(`the server answered ${response.status}`, null);
    return body.data;
  }
}
