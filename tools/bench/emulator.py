"""`make bench-emulator`: requests/s the Stripe emulator sustains through the official SDK, as JSON.

Two client processes (the SDK's own CPU cost would otherwise be what is measured)
of several threads each create customers, then retrieve them, against an emulator
started for each round on a free port; `--repeat` rounds (3: median, min and max).
"""

import argparse
import multiprocessing
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools.bench.verdict import finish, spread_each

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk_test_benchmarkKey00000000000000000"
TARGET_RPS = 500


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_emulator(port: int, *options: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.stripe_emulator", "--port", str(port), "--log-level", "WARNING", *options],
        cwd=ROOT,
    )
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/health", timeout=1)
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the emulator did not start")


def _client_run(args) -> dict:
    """One client process: create `count` customers, then retrieve each, with `threads` threads."""
    import stripe

    url, count, threads, offset, start_at = args
    client = stripe.StripeClient(API_KEY, base_addresses={"api": url}, max_network_retries=0)
    results: dict = {}

    def timed(call):
        started = time.perf_counter()
        try:
            value = call()
            return time.perf_counter() - started, value, None
        except stripe.StripeError as error:
            return time.perf_counter() - started, None, error.__class__.__name__

    while time.time() < start_at:
        time.sleep(0.001)
    for phase in ("create", "retrieve"):
        if phase == "create":
            calls = [
                lambda n=n: client.v1.customers.create(params={"email": f"bench{offset + n}@example.com"})
                for n in range(count)
            ]
        else:
            ids = results["create"]["ids"]
            calls = [lambda customer_id=customer_id: client.v1.customers.retrieve(customer_id) for customer_id in ids]
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            outcomes = list(pool.map(timed, calls))
        results[phase] = {
            "elapsed": time.perf_counter() - started,
            "latencies": [latency for latency, _, _ in outcomes],
            "errors": sum(1 for _, _, error in outcomes if error),
            "ids": [value.id for _, value, _ in outcomes if value is not None],
        }
    return results


def _summary(phase: str, per_process: list[dict]) -> dict:
    latencies = sorted(latency for result in per_process for latency in result[phase]["latencies"])
    requests = len(latencies)
    elapsed = max(result[phase]["elapsed"] for result in per_process)
    return {
        "requests": requests,
        "requests_per_second": round(requests / elapsed, 1),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "latency_p99_ms": round(latencies[int(requests * 0.99) - 1] * 1000, 2),
        "errors": sum(result[phase]["errors"] for result in per_process),
    }


def _round(args) -> tuple[dict, dict]:
    """Creates, then retrieves, against an emulator started for the round: each phase's figures."""
    port = _free_port()
    emulator = _start_emulator(port)
    try:
        per_process_count = args.requests // args.processes
        start_at = time.time() + 1.0
        jobs = [
            (f"http://127.0.0.1:{port}", per_process_count, args.threads, n * per_process_count, start_at)
            for n in range(args.processes)
        ]
        with multiprocessing.Pool(args.processes) as pool:
            per_process = pool.map(_client_run, jobs)
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=10)
    return _summary("create", per_process), _summary("retrieve", per_process)


def _spread(rounds: list[dict]) -> dict:
    """Each figure of a phase as median, min and max over the rounds; errors added up."""
    figures = spread_each([{name: value for name, value in one.items() if name != "errors"} for one in rounds])
    return {**figures, "errors": sum(one["errors"] for one in rounds)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000, help="customers created (and then retrieved)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="threads per client process")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, each with a new emulator (median, min, max)")
    args = parser.parse_args()

    rounds = [_round(args) for _ in range(args.repeat)]
    create = _spread([created for created, _ in rounds])
    retrieve = _spread([retrieved for _, retrieved in rounds])
    report = {
        "benchmark": "stripe-emulator",
        "clients": {"processes": args.processes, "threads_per_process": args.threads, "sdk": "stripe-python"},
        "rounds": args.repeat,
        "customer_create": create,
        "customer_retrieve": retrieve,
        "target_requests_per_second": TARGET_RPS,
    }
    slower = min(create["requests_per_second"]["median"], retrieve["requests_per_second"]["median"])
    checks = {
        f"at_least_{TARGET_RPS}_requests_per_second": slower >= TARGET_RPS,
        "every_request_answered": create["errors"] == 0 and retrieve["errors"] == 0,
    }
    return finish(report, checks)


if __name__ == "__main__":
    sys.exit(main())
