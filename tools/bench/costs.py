"""What a piece of work costs, counted rather than timed (the counts do not depend on the machine): round
trips to PostgreSQL and commits, Redis commands, and calls to Stripe.

Round trips are each statement, plus each transaction's BEGIN and COMMIT (psycopg sends BEGIN on its own); a
write outside a transaction is its own commit. Redis commands are counted where redis-py sends them (a pipeline
is one round trip however many commands it holds); Stripe calls where every request to Stripe goes, the
gateway's HTTP client (dj-stripe's included).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch


@contextmanager
def counted() -> Iterator[dict]:
    import redis
    from django.db import connection

    from apps.payments.gateway.client import BudgetedHTTPClient

    counts: dict = {"round_trips": 0, "commits": 0, "redis_round_trips": 0, "stripe_calls": 0, "statements": []}

    def count(execute, sql, params, many, context):
        counts["round_trips"] += 1
        counts["statements"].append(("" if connection.in_atomic_block else "autocommit ") + sql[:100])
        if not connection.in_atomic_block and not sql.lstrip().upper().startswith("SELECT"):
            counts["commits"] += 1
        return execute(sql, params, many, context)

    commit = connection.commit

    def counted_commit():
        counts["round_trips"] += 2  # its BEGIN and itself
        counts["commits"] += 1
        counts["statements"].append("BEGIN ... COMMIT")
        return commit()

    command, pipeline, request = (
        redis.Redis.execute_command,
        redis.client.Pipeline.execute,
        BudgetedHTTPClient.request,
    )

    def redis_command(self, *args, **options):
        counts["redis_round_trips"] += 1
        return command(self, *args, **options)

    def redis_pipeline(self, *args, **options):
        counts["redis_round_trips"] += 1
        return pipeline(self, *args, **options)

    def stripe_request(self, *args, **options):
        counts["stripe_calls"] += 1
        return request(self, *args, **options)

    with (
        connection.execute_wrapper(count),
        patch.object(connection, "commit", counted_commit),
        patch.object(redis.Redis, "execute_command", redis_command),
        patch.object(redis.client.Pipeline, "execute", redis_pipeline),
        patch.object(BudgetedHTTPClient, "request", stripe_request),
    ):
        yield counts
