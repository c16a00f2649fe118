"""GraphQL at POST /graphql: the schema from schema.graphql, resolvers over the store.

`graphql_routes(settings)` is all the app needs. GET /graphql serves GraphiQL in development
only; in production GET answers 405 and introspection is refused.
"""

from __future__ import annotations

import logging
import time
from functools import cache
from pathlib import Path

from ariadne import load_schema_from_path, make_executable_schema
from ariadne.asgi import GraphQL
from ariadne.explorer import ExplorerGraphiQL, ExplorerHttp405
from graphql import GraphQLSchema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.graphql import comment, lead, notification, task, user
from server.graphql.context import context_for_request
from server.graphql.errors import SilentLogger, format_error
from server.graphql.execution import FastExecutor
from server.graphql.limits import (
    LimitedHTTPHandler,
    caching_validator,
    query_parser,
    validation_rules,
)
from server.graphql.middleware import protect_root_fields
from server.graphql.operation import OperationLabel, labelling_parser, operation_label_var
from server.graphql.scalars import datetime_scalar
from server.metrics import GRAPHQL_DURATION
from server.request_context import request_id_var
from server.settings import Settings
from server.store._queries import count_statements

logger = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parent / "schema.graphql"


@cache
def executable_schema() -> GraphQLSchema:
    schema = make_executable_schema(
        load_schema_from_path(SCHEMA_PATH),
        datetime_scalar,
        user.query,
        user.mutation,
        lead.query,
        lead.mutation,
        task.mutation,
        comment.mutation,
        notification.query,
        notification.mutation,
        notification.notification,
    )
    return protect_root_fields(schema)


def graphql_app(settings: Settings) -> GraphQL:
    development = settings.is_development
    schema = executable_schema()
    return GraphQL(
        schema,
        context_value=context_for_request,
        query_parser=labelling_parser(schema, query_parser(settings.limits)),
        validation_rules=validation_rules(schema, settings.limits),
        query_validator=caching_validator(),
        execution_context_class=FastExecutor,
        introspection=development,
        explorer=ExplorerGraphiQL(title="CRM GraphQL") if development else ExplorerHttp405(),
        debug=False,
        logger=SilentLogger(),
        error_formatter=format_error,
        http_handler=LimitedHTTPHandler(settings.limits),
    )


def graphql_routes(settings: Settings) -> list[Route]:
    """The /graphql route: exact path, so no redirect; GET (explorer), POST, OPTIONS."""
    app = graphql_app(settings)

    async def endpoint(request: Request) -> Response:
        # The request id (server/request_context.py) is in every log line about the request and
        # in the errors that hide detail; the statement count makes an N+1 visible in the log.
        request_id = request_id_var.get()
        label = OperationLabel()
        token = operation_label_var.set(label)
        started = time.perf_counter()
        try:
            with count_statements() as count:
                response = await app.handle_request(request)
        finally:
            operation_label_var.reset(token)
        elapsed = time.perf_counter() - started
        if request.method == "POST":
            GRAPHQL_DURATION.labels(operation=label.value).observe(elapsed)
        logger.info(
            "action=graphql_request request_id=%s method=%s operation=%s status=%s "
            "statements=%d ms=%.1f",
            request_id,
            request.method,
            label.value,
            response.status_code,
            count.statements,
            elapsed * 1000,
        )
        return response

    return [Route("/graphql", endpoint, methods=["GET", "POST", "OPTIONS"])]
