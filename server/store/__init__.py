"""The only code that runs SQL: async functions `(conn, *, ...) -> rows` over named queries.

Rows are plain dicts whose keys are the camelCase column names, so they map onto GraphQL types
and event payloads as they are. Driver errors pass through untranslated; callers that serve
clients open their connection with `server.db.connection`, which translates them in one place.
"""
