"""`make soak DURATION=30m`: the whole system under a long mixed load with faults, then checked against Stripe.

On loopback, bounded in time, on a database of its own (`soak`, emptied at the start) and Redis databases
8 to 10: gunicorn (production settings), a payments worker (webhooks, mirror, payments), a mail worker and
beat, against the Stripe emulator at Stripe's live rate limits and a real SMTP server.

- Locust (tools/soak/locustfile.py) drives shoppers who browse, register, check out and pay, get
  declined, cancel or walk away, and staff who add, edit, reprice and archive products and refund orders.
- The emulator delivers every event with 20% duplicates, shuffled, and answers 5% of API requests with
  a 429 and 1% with a 500.
- Every few minutes one worker is killed (SIGKILL, all its processes) and started again.

When the load stops the faults are lifted and the system is given time to settle; then the checker
(tools/soak/checker.py) compares the database with the emulator and the mail server. The JSON summary
(stdout, and var/soak/summary.json beside every process's log) has the requests per endpoint (count,
p50, p99, statuses), the faults and kills, and every mismatch. Exit status 1 on any 5xx (a 503 with
`Retry-After`, which the simulated client tries again as told, is counted apart), any request
left unanswered, any mismatch, or a system that did not settle.
"""

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools.bench.emulator import _free_port, _start_emulator  # noqa: E402
from tools.bench.mirror import ACCOUNT_LIMIT, ENDPOINT_LIMIT, _control, _prepare_database  # noqa: E402
from tools.bench.webhooks import API_KEY, SECRET, _wait_port, stack_environment  # noqa: E402

STAFF_EMAIL, STAFF_PASSWORD = "staff@example.com", "soak-staff-passphrase-long"
SHOP_HOST = "shop.example.com"


def parse_duration(text: str) -> int:
    """`90`, `90s`, `30m`, `2h` -> seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smh]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"a duration is 90, 90s, 30m or 2h, not {text!r}")
    return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


class Stack:
    """The processes of a deployment, each in a process group of its own so a kill takes all its children."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env = env
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill(self, name: str) -> None:
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(name)


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "config", *args]


# As docker-compose.yml runs them.
WEB_OPTIONS = ("--worker-class", "gthread", "--workers", "2", "--threads", "4", "--keep-alive", "10")
WORKER_OPTIONS = ("--loglevel", "WARNING")
WORKERS = {
    "worker-payments": _celery(
        "worker",
        "--queues",
        "webhooks,mirror,payments",
        "--concurrency",
        "2",
        "--hostname",
        "payments@%h",
        *WORKER_OPTIONS,
    ),
    "worker-mail": _celery(
        "worker", "--queues", "mail", "--concurrency", "1", "--hostname", "mail@%h", *WORKER_OPTIONS
    ),
}


def environment(
    emulator_url: str, database_url: str, smtp_url: str, broker_url: str, coordination_url: str, cache_url: str
) -> dict[str, str]:
    return {
        **stack_environment(emulator_url, database_url, drainers=2),
        "CELERY_BROKER_URL": broker_url,
        "COORDINATION_REDIS_URL": coordination_url,
        "CACHE_URL": cache_url,
        "STRIPE_MIRROR_ENABLED": "true",
        "STRIPE_APP_NAMESPACE": "soak",
        "EMAIL_URL": smtp_url,
        # Each simulated person sends their own address: the rate limits count people, as deployed.
        "DJANGO_NUM_PROXIES": "1",
        "CHECKOUT_REDIRECT_HOSTS": SHOP_HOST,
        # An order whose session Stripe did not answer for waits this long for the client's retry before the
        # worker closes it: short, so that the run settles (and the worker's closing is part of what is run).
        "CHECKOUT_REUSE_SECONDS": "30",
        "SITE_URL": f"https://{SHOP_HOST}",
        "LOG_LEVEL": "WARNING",
    }


def chaos(stack: Stack, every: float, stopping: threading.Event, kills: list[dict], started: float) -> None:
    """Kill one worker (in turn) every `every` seconds and start it again a few seconds later."""
    names = list(WORKERS)
    turn = 0
    while not stopping.wait(every):
        name = names[turn % len(names)]
        turn += 1
        stack.kill(name)
        kills.append({"worker": name, "at_s": round(time.time() - started, 1)})
        time.sleep(3)  # down for a moment, as a restarted container is
        stack.start(name, WORKERS[name])


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 1)


def requests_summary(results: dict, seconds: float) -> dict:
    by_endpoint = {}
    server_errors = unanswered = total = 0
    unexpected = results["unexpected"]
    retried = results.get("retried_after_503", {})
    for name, statuses in sorted(results["statuses"].items()):
        times = results["timings"][name]
        counts = {int(status): count for status, count in statuses.items()}
        total += sum(counts.values())
        ours = not name.startswith("emulator")
        # A 503 with `Retry-After` that was tried again is the system asking a client to come back, not an error.
        server_errors += sum(count for status, count in counts.items() if status >= 500 and ours) - retried.get(name, 0)
        unanswered += counts.get(0, 0) if ours else 0
        by_endpoint[name] = {
            "count": sum(counts.values()),
            "p50_ms": round(statistics.median(times), 1),
            "p99_ms": _percentile(times, 0.99),
            "statuses": dict(sorted(counts.items())),
            **({"retried_after_503": retried[name]} if name in retried else {}),
            **({"unexpected": unexpected[name]} if name in unexpected else {}),
            **({"no_answer": results["no_answer"][name]} if name in results["no_answer"] else {}),
        }
    return {
        "total": total,
        "per_second": round(total / seconds, 1),
        "server_errors_5xx": server_errors,
        "retried_after_503": sum(retried.values()),
        "unanswered": unanswered,
        # Answers a person would not expect (a 429 at their first login, a refused payment page...) and what
        # failed inside a simulated person's step: each with the first few answers.
        "unexpected": sum(entry["count"] for entry in unexpected.values()) + len(results["task_errors"]),
        "task_errors": results["task_errors"][:10],
        "by_endpoint": by_endpoint,
    }


def settle(timeout: float, emulator_url: str) -> dict:
    """Wait until nothing is in flight: webhooks delivered and processed, mirror rows pushed, mail sent.
    Says how long that took and, per kind of work, for how long it was what was still going on."""
    from apps.mail.models import MessageState, OutgoingMessage
    from apps.payments.mirror.models import MirrorRecord, MirrorState
    from apps.payments.orders.models import Order, OrderStatus
    from apps.payments.webhooks.models import WebhookEvent, WebhookEventState

    still_going = {
        "webhook deliveries": lambda: not _control(emulator_url, "POST", "webhooks/wait", {"timeout": 1})["idle"],
        "events to process": WebhookEvent.objects.filter(state=WebhookEventState.RECEIVED).exists,
        "mirror rows to push": MirrorRecord.objects.filter(state=MirrorState.PENDING).exists,
        "mail to send": OutgoingMessage.objects.filter(state__in=(MessageState.QUEUED, MessageState.SENDING)).exists,
        # A session Stripe did not answer for, whose retry never came: the worker closes the order.
        "orders to close": Order.objects.filter(
            status=OrderStatus.PENDING, checkout_session_id=None, payment_intent_id=""
        ).exists,
    }
    waited_for = dict.fromkeys(still_going, 0.0)
    started = last = time.time()
    quiet_since = None
    while time.time() - started < timeout:
        busy = [name for name, going in still_going.items() if going()]
        now = time.time()
        for name in busy:
            waited_for[name] += now - last
        last = now
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= 5:  # quiet for a while: no task is about to write more
            return {"seconds": round(quiet_since - started, 1), "waited_for_s": _rounded(waited_for)}
        time.sleep(1)
    return {"seconds": None, "waited_for_s": _rounded(waited_for)}


def _rounded(seconds: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 1) for name, value in seconds.items()}


def _stop_on_sigterm() -> None:
    """A SIGTERM (a test's timeout, Ctrl-C's cousin) unwinds through the cleanup like any error."""

    def stop(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=parse_duration, default="30m", help="how long the load runs (30m)")
    parser.add_argument("--shoppers", type=int, default=20)
    parser.add_argument("--kill-every", type=parse_duration, default=None,
                        help="seconds between worker kills (default: 3m, or a third of a shorter run)")  # fmt: skip
    parser.add_argument("--products", type=int, default=40, help="on sale when the load starts")
    parser.add_argument("--settle-timeout", type=parse_duration, default="5m")
    parser.add_argument("--database", default="soak")
    parser.add_argument("--redis-databases", default="8,9,10", help="broker, coordination, cache (emptied first)")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "soak", help="logs and summary.json go here")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    kill_every = args.kill_every or min(180, max(20, args.duration // 3))
    _stop_on_sigterm()

    import redis

    from tests.smtp_sink import SmtpSink

    redis_urls = [f"redis://127.0.0.1:6379/{n}" for n in args.redis_databases.split(",")]
    for url in redis_urls:
        redis.Redis.from_url(url).flushdb()
    for stale in out.glob("*.log"):
        stale.unlink()
    report: dict = {"soak": {"duration_s": args.duration, "shoppers": args.shoppers, "kill_every_s": kill_every}}
    stopping, kills = threading.Event(), []
    with contextlib.ExitStack() as cleanup:
        mail = SmtpSink().start()
        cleanup.callback(mail.stop)
        web_port, emulator_port = _free_port(), _free_port()
        emulator_url = f"http://127.0.0.1:{emulator_port}"
        emulator = _start_emulator(
            emulator_port,
            "--webhook-url", f"http://127.0.0.1:{web_port}/stripe/webhook/", "--webhook-secret", SECRET,
        )  # fmt: skip
        cleanup.callback(emulator.wait)
        cleanup.callback(emulator.kill)
        database_url = _prepare_database(args.database)
        env = environment(emulator_url, database_url, mail.url, *redis_urls)
        stack = Stack(env, out)
        cleanup.callback(stack.stop_all)
        start_stack(stack, env, web_port, out)
        _control(emulator_url, "POST", "rate_limit",
                 {"per_second": ACCOUNT_LIMIT, "per_endpoint_per_second": ENDPOINT_LIMIT})  # fmt: skip

        # This process seeds the catalog and later checks: the test settings (cheap password hashing) on
        # the soak's database, queueing to the soak's broker.
        os.environ.update({**env, "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_CONN_MAX_AGE": "60"})
        import django

        django.setup()
        seed(args.products)
        if settle(args.settle_timeout, emulator_url)["seconds"] is None:
            raise RuntimeError("the catalog was not mirrored before the load")

        _control(emulator_url, "POST", "webhooks", {"duplicate_ratio": 0.2, "shuffle": True})
        _control(emulator_url, "POST", "faults", {"status": 429, "ratio": 0.05})
        # Half the 500s strike after Stripe did the work (the answer is lost): retries must not do it twice.
        _control(emulator_url, "POST", "faults", {"status": 500, "ratio": 0.005})
        _control(emulator_url, "POST", "faults", {"status": 500, "ratio": 0.005, "phase": "after"})

        started = time.time()
        killer = threading.Thread(target=chaos, args=(stack, kill_every, stopping, kills, started), daemon=True)
        killer.start()
        cleanup.callback(killer.join)
        cleanup.callback(stopping.set)  # first of all, should anything fail: no more kills and restarts
        results = run_locust(args, web_port, emulator_url, out)
        elapsed = time.time() - started
        stopping.set()
        killer.join()

        faults = _control(emulator_url, "GET", "faults")["data"]
        report["faults_injected"] = {f"{rule['status']} {rule['phase']} the work": rule["hits"] for rule in faults}
        _control(emulator_url, "DELETE", "faults")
        report["kills"] = kills
        report["requests"] = requests_summary(results, elapsed)
        report["settled"] = settle(args.settle_timeout, emulator_url)
        _control(emulator_url, "DELETE", "rate_limit")  # the checker reads everything at once

        from tools.soak.checker import check

        mail_worker_kills = sum(1 for kill in kills if kill["worker"] == "worker-mail")
        report["check"] = check(emulator_url, API_KEY, list(mail.messages), mail_worker_kills=mail_worker_kills)
    requests = report["requests"]
    report["ok"] = not (
        requests["server_errors_5xx"]
        or requests["unanswered"]
        or requests["unexpected"]
        or report["check"]["mismatches"]
        or report["settled"]["seconds"] is None
    )
    from tools.bench.verdict import environment as measured_in

    report["environment"] = measured_in(database_url)
    text = json.dumps(report, indent=2)
    (out / "summary.json").write_text(text)
    print(text)
    return 0 if report["ok"] else 1


def start_stack(stack: Stack, env: dict[str, str], web_port: int, out: Path) -> None:
    manage = [sys.executable, "manage.py"]
    # Through the users' services, as the API registers people (production's password hashing).
    make_staff = (
        "from apps.users.services import user_create; "
        f"user_create(email={STAFF_EMAIL!r}, password={STAFF_PASSWORD!r}, name='Staff', is_staff=True, "
        "is_superuser=True)"
    )
    subprocess.run([*manage, "shell", "-c", make_staff], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    stack.start("web", [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{web_port}",
                        *WEB_OPTIONS])  # fmt: skip
    for name, command in WORKERS.items():
        stack.start(name, command)
    stack.start("beat", _celery("beat", "--loglevel", "WARNING", "--schedule", str(out / "beat-schedule")))
    _wait_port(web_port)


def run_locust(args, web_port: int, emulator_url: str, out: Path) -> dict:
    """Locust's run, in a process of its own; what every request got (tools/soak/locustfile.py writes it)."""
    results_file = out / "requests.json"
    locust = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "tools/soak/locustfile.py"), "--headless",
        "--users", str(args.shoppers + 2), "--spawn-rate", "4", "--run-time", f"{args.duration}s",
        "--host", f"http://127.0.0.1:{web_port}", "--only-summary", "--stop-timeout", "20",
        "--loglevel", "WARNING", "--exit-code-on-error", "0",
    ]  # fmt: skip
    locust_env = {
        **os.environ,
        "SOAK_EMULATOR_URL": emulator_url,
        "SOAK_RESULTS_FILE": str(results_file),
        "SOAK_STAFF_EMAIL": STAFF_EMAIL,
        "SOAK_STAFF_PASSWORD": STAFF_PASSWORD,
    }
    with open(out / "locust.log", "wb") as log:
        subprocess.run(locust, cwd=ROOT, env=locust_env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return json.loads(results_file.read_text())


def seed(products: int) -> None:
    from django.db import transaction

    from apps.catalog import services as catalog

    for n in range(products):
        with transaction.atomic():
            product = catalog.product_create(name=f"Soak product {n}")
            catalog.price_create(product=product, unit_amount=500 + 250 * n, currency="eur")


if __name__ == "__main__":
    sys.exit(main())
