"""What `make bench-webhooks` runs (tools/bench/webhooks.py): the web server and worker exactly as
docker-compose.yml starts them, and the traffic it sends. The measuring itself is the benchmark's run."""

import itertools
import json

from tools.bench import webhooks


def test_it_runs_the_web_server_and_worker_compose_ships():
    setup = webhooks.shipped()

    assert setup["web"][:2] == ["gunicorn", "config.wsgi"]
    assert "--bind" not in setup["web"]  # the benchmark's own address
    assert setup["worker"][:4] == ["celery", "-A", "config", "worker"]
    # compose's CPU weight against the web's default, as the niceness that weighs the same on one machine
    assert (setup["worker_cpu_shares"], setup["worker_nice"]) == (256, 6)


def test_the_traffic_is_edits_echoes_and_redeliveries():
    products = [{"id": f"prod_{n}", "object": "product", "name": f"P{n}", "updated": 1000} for n in range(10)]

    stream = [json.loads(payload) for payload in webhooks.catalog_traffic(products, 60, 0.2, "t_")]

    ids = [event["id"] for event in stream]
    assert len(set(ids)) == 60
    assert len(ids) == 72  # a fifth again, redelivered
    echoes = [
        (first, second)
        for first, second in itertools.pairwise(stream)
        if first["id"] != second["id"] and first["data"] == second["data"]
    ]
    assert echoes  # our own write coming back: the same state under another event id
    # First deliveries come in each product's order: whichever drain takes one, none is stale.
    seen, newest = set(), {}
    for event in stream:
        if event["id"] in seen:
            continue
        seen.add(event["id"])
        obj = event["data"]["object"]
        assert obj["updated"] >= newest.get(obj["id"], 0)
        newest[obj["id"]] = obj["updated"]
