"""Who uses the shop during a soak: shoppers and staff, through the API as deployed; payers through the emulator.

Run by `tools/soak` (not by hand): it passes the emulator's address, the staff login and the file where
every request's endpoint, status and time are written when the load stops. Each simulated person sends
their own client address (`X-Forwarded-For`, one proxy trusted), so the rate limits count them as the
deployment would count real people, not as one address.
"""

import json
import os
import random
import time
import uuid
from collections import defaultdict

from locust import HttpUser, between, events, task

EMULATOR_URL = os.environ["SOAK_EMULATOR_URL"]
RESULTS_FILE = os.environ["SOAK_RESULTS_FILE"]
STAFF_EMAIL = os.environ["SOAK_STAFF_EMAIL"]
STAFF_PASSWORD = os.environ["SOAK_STAFF_PASSWORD"]
RETURN_URL = "https://shop.example.com/thanks"
PASSWORD = "soak-passphrase-long-enough"  # noqa: S105 - throwaway shoppers
# A shopper becomes someone new (a new address too) after this many visits: registrations keep coming, tokens
# stay fresh. Not more often: each registration and login hashes a password at production cost.
VISITS_PER_IDENTITY = 30

# endpoint -> status -> count, and endpoint -> response times (ms); ours and the emulator's apart.
statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
timings: dict[str, list[float]] = defaultdict(list)
no_answer: dict[str, list[str]] = defaultdict(list)  # what went wrong, for the first few requests left unanswered
# 503s that said when to come back (`Retry-After`) and were tried again then, as a client should, per endpoint.
retried_after_503: dict[str, int] = defaultdict(int)
# How often a person tries again when told to come back; a request still refused after that is unexpected.
RETRIES_AFTER_503 = 3
# Answers outside what the step expects, per endpoint: how many, and the first few.
unexpected: dict[str, dict] = defaultdict(lambda: {"count": 0, "first": []})
task_errors: list[str] = []  # a step that raised (a simulated person's bug or an answer it could not read)


@events.request.add_listener
def _record(request_type, name, response_time, response, exception, **_):
    status = getattr(response, "status_code", 0) or 0  # 0: no answer at all (connection refused, timeout)
    statuses[name][status] += 1
    timings[name].append(response_time)
    if not status and len(no_answer[name]) < 5:
        no_answer[name].append(repr(exception)[:300])


@events.user_error.add_listener
def _record_task_error(user_instance, exception, tb, **_):
    task_errors.append(f"{type(user_instance).__name__}: {exception!r}"[:300])


def _note_unexpected(name: str, answer) -> None:
    entry = unexpected[name]
    entry["count"] += 1
    if len(entry["first"]) < 5:
        entry["first"].append(f"{answer.status_code}: {answer.text[:200]}")


@events.quitting.add_listener
def _write_results(environment, **_):
    with open(RESULTS_FILE, "w") as out:
        json.dump(
            {
                "statuses": statuses,
                "timings": timings,
                "no_answer": no_answer,
                "unexpected": unexpected,
                "retried_after_503": retried_after_503,
                "task_errors": task_errors,
            },
            out,
        )


class Person(HttpUser):
    abstract = True
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.move()
        self.access = ""

    def move(self) -> None:
        self.address = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"

    def call(self, method: str, path: str, name: str, ok=(200, 201, 204), **kwargs):
        """One API request as this person; an answer outside `ok` is unexpected (the soak fails on it). A 503
        that says when to come back (Stripe busy, an object on its way to Stripe) is sent again then."""
        answer = self._send(method, path, name, **kwargs)
        if answer.status_code == 401 and self.access and self.log_in_again():  # the access token expired
            answer = self._send(method, path, name, **kwargs)
        for _ in range(RETRIES_AFTER_503):
            if answer.status_code != 503 or "Retry-After" not in answer.headers:
                break
            retried_after_503[name] += 1
            time.sleep(min(float(answer.headers["Retry-After"]), 10))
            answer = self._send(method, path, name, **kwargs)
        if answer.status_code and answer.status_code not in ok:
            _note_unexpected(name, answer)
        return answer

    def _send(self, method: str, path: str, name: str, **kwargs):
        headers = {"X-Forwarded-For": self.address}
        if self.access:
            headers["Authorization"] = f"Bearer {self.access}"
        with self.client.request(method, path, name=name, headers=headers, catch_response=True, **kwargs) as answer:
            answer.success()  # judged by `call`, not by locust's report
            return answer

    def log_in_again(self) -> bool:
        return False

    def log_in(self, email: str, password: str) -> bool:
        self.access = ""
        answer = self.call("POST", "/api/v1/auth/token", "auth/token", json={"email": email, "password": password})
        if answer.status_code != 200:
            return False
        self.access = answer.json()["access"]
        return True

    def on_sale(self) -> list[dict]:
        """One-off prices on sale, as a catalog page lists them."""
        page = random.randint(1, 3)
        # `active=true`: staff would see archived products too.
        answer = self.call("GET", f"/api/v1/products?active=true&page={page}", "products", ok=(200, 404))
        if answer.status_code != 200:
            return []
        return [
            {**price, "product_name": product["name"]}
            for product in answer.json()["results"]
            for price in product["prices"]
            if price["recurring_interval"] is None
        ]

    def emulator(self, path: str, name: str, body: dict | None = None):
        """What the payer does on Stripe's page (the emulator's control API); the session is open, so it works."""
        with self.client.post(
            f"{EMULATOR_URL}/_emulator/{path}", json=body or {}, name=name, catch_response=True
        ) as answer:
            answer.success()
        if answer.status_code != 200:
            _note_unexpected(name, answer)
        return answer


class Shopper(Person):
    weight = 10

    def on_start(self) -> None:
        super().on_start()
        self.become_someone_new()

    def become_someone_new(self) -> None:
        self.visits = 0
        self.move()
        email = f"shopper-{uuid.uuid4().hex[:12]}@example.com"
        self.access = ""
        answer = self.call(
            "POST", "/api/v1/auth/register", "auth/register", json={"email": email, "password": PASSWORD, "name": "S"}
        )
        if answer.status_code == 201:
            self.log_in(email, PASSWORD)

    def visit(self) -> None:
        self.visits += 1
        if self.visits > VISITS_PER_IDENTITY or not self.access:
            self.become_someone_new()

    @task(5)
    def browse(self) -> None:
        self.visit()
        prices = self.on_sale()
        if prices:
            self.call("GET", f"/api/v1/products/{random.choice(prices)['product']}", "products/{id}", ok=(200, 404))

    @task(1)
    def my_orders(self) -> None:
        self.visit()
        self.call("GET", "/api/v1/orders", "orders")

    @task(4)
    def buy(self) -> None:
        """Check a cart out, then on Stripe's page: pay, be declined and pay, walk away, or cancel."""
        self.visit()
        prices = self.on_sale()
        if not prices:
            return
        currency = random.choice(prices)["currency"]
        same_currency = [price for price in prices if price["currency"] == currency]
        chosen = random.sample(same_currency, k=min(len(same_currency), random.randint(1, 2)))
        lines = [{"price": price["id"], "quantity": random.randint(1, 3)} for price in chosen]
        answer = self.call(
            "POST",
            "/api/v1/checkout/sessions",
            "checkout/sessions",
            # 400: staff archived a price of the cart since the page was read.
            ok=(201, 400),
            json={"lines": lines, "success_url": RETURN_URL, "cancel_url": RETURN_URL},
        )
        if answer.status_code != 201:
            return
        session, order = answer.json()["session_id"], answer.json()["order"]
        complete = f"checkout/sessions/{session}/complete"
        roll = random.random()
        if roll < 0.70:
            self.emulator(complete, "emulator: pay", {"outcome": "paid"})
        elif roll < 0.80:
            self.emulator(complete, "emulator: declined", {"outcome": "declined"})
            self.emulator(complete, "emulator: pay", {"outcome": "paid"})
        elif roll < 0.88:
            self.call("POST", f"/api/v1/orders/{order}/cancel", "orders/{id}/cancel")
        elif roll < 0.95:
            self.emulator(f"checkout/sessions/{session}/expire", "emulator: expire")
        # else: the payer walks away; the session stays open and the order pending.
        self.call("GET", f"/api/v1/orders/{order}", "orders/{id}")


class Staff(Person):
    fixed_count = 2
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        super().on_start()
        self.log_in(STAFF_EMAIL, STAFF_PASSWORD)

    def log_in_again(self) -> bool:
        return self.log_in(STAFF_EMAIL, STAFF_PASSWORD)

    @task(2)
    def add_product(self) -> None:
        answer = self.call("POST", "/api/v1/products", "staff: products", json={"name": f"Soak {uuid.uuid4().hex[:8]}"})
        if answer.status_code == 201:
            body = {"product": answer.json()["id"], "unit_amount": random.randint(100, 20000), "currency": "eur"}
            self.call("POST", "/api/v1/prices", "staff: prices", json=body)

    @task(3)
    def rename_product(self) -> None:
        prices = self.on_sale()
        if prices:
            product = random.choice(prices)["product"]
            body = {"description": f"Edited {uuid.uuid4().hex[:6]}"}
            self.call("PATCH", f"/api/v1/products/{product}", "staff: products/{id}", json=body)

    @task(3)
    def reprice(self) -> None:
        """A new amount on a price on sale, while shoppers check it out."""
        prices = self.on_sale()
        if prices:
            price = random.choice(prices)
            body = {"unit_amount": random.randint(100, 20000)}
            self.call("PATCH", f"/api/v1/prices/{price['id']}", "staff: prices/{id}", json=body)

    @task(1)
    def archive_product(self) -> None:
        answer = self.call("GET", "/api/v1/products?active=true", "products")
        if answer.status_code == 200 and answer.json()["count"] > 20:  # keep something on sale
            prices = self.on_sale()
            if prices:
                product = random.choice(prices)["product"]
                self.call("DELETE", f"/api/v1/products/{product}", "staff: products/{id}")

    @task(2)
    def refund(self) -> None:
        """Part of what remains of a paid order back to its payer, or all of it."""
        status = random.choice(("paid", "partially_refunded"))
        answer = self.call("GET", f"/api/v1/orders?status={status}", "staff: orders")
        if answer.status_code == 200 and answer.json()["results"]:
            order = random.choice(answer.json()["results"])
            remaining = order["amount_charged"] - order["amount_refunded"]
            amount = random.choice((remaining, max(1, remaining // 3)))
            # 400: another refund took what remained meanwhile; 409: the order moved on (refunded in full).
            self.call(
                "POST", f"/api/v1/orders/{order['id']}/refunds", "staff: orders/{id}/refunds",
                ok=(201, 400, 409), json={"amount": amount},
            )  # fmt: skip
