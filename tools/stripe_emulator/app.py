"""The emulator as one object: state, delivery, and the path of each HTTP request through them.

An API request goes through what Stripe's front door does, in Stripe's order:
authentication, the rate limiter, then the idempotency layer, then the endpoint.
"""

import base64
import json
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote_plus

from . import (
    api_billing,
    api_catalog,
    api_checkout,
    api_customers,
    api_events,
    api_payments,
    control,
    pages,
    sdk_params,
)
from .errors import ParamError, StripeError, UnsavedError, rate_limited, server_error, unauthenticated
from .faults import Faults, RateLimiter
from .idempotency import IdempotencyCache
from .params import decode
from .routing import Call, Router
from .store import ALPHABET, API_VERSION, Store, _random
from .webhooks import Dispatcher

log = logging.getLogger("stripe_emulator")

TEST_KEY = re.compile(r"^sk_test_[A-Za-z0-9]{24,}$")
# The publishable key of the account of `sk_test_X` is `pk_test_X`, as Stripe pairs them.
PUBLISHABLE_KEY = re.compile(r"^pk_test_[A-Za-z0-9]{24,}$")
PUBLISHABLE_REFUSED = (
    "This API call cannot be made with a publishable API key. Please use a secret API key. You can find a list "
    "of your API keys at https://dashboard.stripe.com/account/apikeys."
)


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict = field(default_factory=dict)
    content_type: str = "application/json"


def _request_id() -> str:
    return "req_" + "".join(_random.choices(ALPHABET, k=14))


def _json(data) -> bytes:
    return json.dumps(data, indent=2).encode()


def _key_parameter(params_text: str) -> str | None:
    key = dict(parse_qsl(params_text)).get("key")
    return f"Bearer {key}" if key else None


class RequestLog:
    """What clients asked, for tests and benchmarks to count (`GET /_emulator/requests`)."""

    def __init__(self, size: int = 200_000):
        self._entries: deque[dict] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, entry: dict) -> None:
        with self._lock:
            self._entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def query(self, filters: dict) -> dict:
        with self._lock:
            entries = list(self._entries)
        if filters.get("method"):
            entries = [e for e in entries if e["method"] == filters["method"].upper()]
        if filters.get("path_prefix"):
            entries = [e for e in entries if e["path"].startswith(filters["path_prefix"])]
        if filters.get("idempotency_key"):
            entries = [e for e in entries if e["idempotency_key"] == filters["idempotency_key"]]
        if filters.get("status"):
            entries = [e for e in entries if str(e["status"]) == filters["status"]]
        if filters.get("since"):
            entries = [e for e in entries if e["at"] >= float(filters["since"])]
        return {"count": len(entries), "data": entries if filters.get("summary") != "true" else []}


class Emulator:
    def __init__(self, public_url: str, webhook_senders: int = 4):
        self.public_url = public_url.rstrip("/")
        self.store = Store()
        self.store.public_url = self.public_url
        self.dispatcher = Dispatcher(self.store, senders=webhook_senders)
        self.store.on_event = self.dispatcher.event_created
        self.idempotency = IdempotencyCache()
        self.faults = Faults()
        self.limiter = RateLimiter()
        self.requests = RequestLog()
        self.api = Router()
        for module in (api_customers, api_catalog, api_checkout, api_payments, api_billing, api_events):
            self.api.extend(module.router)
        self.permanent_endpoints: set[str] = set()
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.dispatcher.start()
        threading.Thread(target=self._pass_time, name="wall-clock", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        self.dispatcher.stop()

    def _pass_time(self) -> None:
        """What the wall clock brings: sessions expire, subscriptions without a test clock renew."""
        while not self._stopping.wait(1.0):
            try:
                with self.store.lock:
                    api_checkout.expire_due_sessions(self.store)
                    api_billing.advance_due_subscriptions(self.store)
            except Exception:  # the loop must outlive one bad object
                log.exception("emulator: passing time failed")

    def register_endpoint(self, url: str, secret: str | None) -> dict:
        """The `--webhook-url` of the command line: survives `POST /_emulator/reset`.

        An endpoint for the same URL loaded from a state file is reused, so a restart never doubles deliveries.
        """
        with self.store.lock:
            existing = [e for e in self.store.objects["webhook_endpoint"].values() if e["url"] == url]
            if existing:
                endpoint = existing[0]
                if secret:
                    self.store.webhook_secrets[endpoint["id"]] = secret
            else:
                endpoint = api_events.create_endpoint(self.store, url, ["*"], secret, api_version=API_VERSION)
        self.permanent_endpoints.add(endpoint["id"])
        return endpoint

    def reset(self) -> None:
        with self.store.lock:
            kept = {
                endpoint_id: (
                    self.store.objects["webhook_endpoint"][endpoint_id],
                    self.store.webhook_secrets[endpoint_id],
                )
                for endpoint_id in self.permanent_endpoints
                if endpoint_id in self.store.objects["webhook_endpoint"]
            }
            self.store.reset()
            for endpoint_id, (endpoint, secret) in kept.items():
                self.store.add(endpoint)
                self.store.webhook_secrets[endpoint_id] = secret
        self.dispatcher.clear()
        self.idempotency.clear()
        self.faults.clear()
        self.limiter.configure()
        self.requests.clear()

    # -- requests -----------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers, body: bytes) -> Response:
        path, _, query = target.partition("?")
        if path.startswith("/v1/"):
            return self._api(method, path, query, headers, body)
        if path.startswith("/_emulator/"):
            return self._control(method, path, query, headers, body)
        return self._page(method, path, query, body)

    def _page(self, method: str, path: str, query: str, body: bytes) -> Response:
        with self.store.lock:
            status, html, location = self._page_answer(method, path, query, body)
        headers = {"Location": location} if location else {}
        return Response(status, html.encode(), headers, "text/html; charset=utf-8")

    def _page_answer(self, method: str, path: str, query: str, body: bytes) -> tuple[int, str, str | None]:
        """A page shows on GET; the forms on it POST back to it and answer with where to go next."""
        store = self.store
        forms = (
            (r"/c/pay/([^/]+)", pages.checkout_page, pages.submit_checkout),
            (r"/p/session/([^/]+)", pages.portal_page, pages.submit_portal),
            (r"/i/([^/]+)", pages.invoice_page, pages.submit_invoice),
        )
        for pattern, show, submit in forms:
            if match := re.fullmatch(pattern, path):
                return submit(store, match[1], body) if method == "POST" else (*show(store, match[1]), None)
        if match := re.fullmatch(r"/3ds/([^/]+)", path):
            if method == "POST":
                return pages.submit_authentication(store, match[1], query, body)
            return (*pages.authentication_page(store, match[1], query), None)
        if path == "/confirm":
            return (*pages.intent_confirm_page(store, query), None)
        if re.fullmatch(r"/b/([^/]+)/thanks", path):
            return (*pages.thanks_page(), None)
        if match := re.fullmatch(r"/b/([^/]+)", path):
            return pages.payment_link_entry(store, self.public_url, match[1], query)
        return 404, "<h1>Not found</h1>", None

    def _control(self, method: str, path: str, query: str, headers, body: bytes) -> Response:
        match = control.router.match(method, path)
        try:
            if match is None:
                raise control.not_found(method, path)
            handler, args, _ = match
            params = control.read_body(body, headers.get("Content-Type", ""))
            call = control.ControlCall(self, args, params, dict(parse_qsl(query)))
            # Handlers that touch objects take the store lock themselves: waiting for
            # webhook delivery must not hold it, since delivery needs it.
            return Response(200, _json(handler(call)))
        except StripeError as error:
            return Response(error.status, _json(error.body()))
        except Exception:
            log.exception("emulator control request crashed path=%s", path)
            return Response(500, _json(server_error(500, saved=True).body()))

    def _api(self, method: str, path: str, query: str, headers, body: bytes) -> Response:
        request_id = _request_id()
        started = time.time()
        idempotency_key = headers.get("Idempotency-Key") if method == "POST" else None
        version = headers.get("Stripe-Version") or API_VERSION
        replayed, endpoint = False, None
        try:
            params_text = body.decode() if method == "POST" else query
            # Stripe.js sends the publishable key as a `key` parameter rather than a header.
            api_key = self._authenticate(headers.get("Authorization") or _key_parameter(params_text))
            match = self.api.match(method, path)
            endpoint = match[2] if match else path
            publishable = api_key.startswith("pk_")
            if publishable and f"{method} {endpoint}" not in self.api.publishable:
                raise unauthenticated(PUBLISHABLE_REFUSED)
            reason = self.limiter.check(f"{method} {endpoint}")
            if reason:
                raise rate_limited(reason)
            latency, answer_latency, fault = self.faults.pick(method, path, unquote_plus(body.decode(errors="replace")))
            if fault is not None and fault.phase == "before":
                time.sleep(latency / 1000)
                raise self._fault_error(fault)
            if match is None:
                raise UnsavedError(
                    404,
                    f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help "
                    "at https://support.stripe.com/.",
                )
            handler, args, _ = match
            params = decode(params_text)
            params.pop("key", None)
            sdk_params.check_params(f"{method} {endpoint}", params, publishable=publishable)
            call = Call(
                self.store, method, path, params, args, request_id, idempotency_key, self.public_url, publishable
            )
            response, replayed = self._run(call, handler, api_key, latency, fault)
            if answer_latency:
                time.sleep(answer_latency / 1000)  # the change is made and remembered; the answer comes late
        except StripeError as error:
            response = Response(error.status, _json(error.body(request_id)), dict(error.headers))
        response.headers.update({"Request-Id": request_id, "Stripe-Version": version})
        if idempotency_key:
            response.headers["Idempotency-Key"] = idempotency_key
        self.requests.add(
            {
                "id": request_id,
                "method": method,
                "path": path,
                "endpoint": endpoint,
                "idempotency_key": idempotency_key,
                "status": response.status,
                "replayed": replayed,
                "at": started,
            }
        )
        return response

    def _run(self, call: Call, handler, api_key: str, latency: int, fault) -> tuple[Response, bool]:
        key = call.idempotency_key
        if key:
            fingerprint = json.dumps([call.method, call.path, call.params], sort_keys=True)
            saved = self.idempotency.begin(api_key, key, fingerprint, call.request_id)
            if saved is not None:
                headers = {**(saved.headers or {}), "Idempotent-Replayed": "true", "Original-Request": saved.request_id}
                return Response(saved.status, saved.body, headers), True
        try:
            if latency:
                time.sleep(latency / 1000)  # while the key is in flight, so a parallel retry sees 409
            if fault is not None and fault.phase == "saved":
                raise self._fault_error(fault, saved=True)
            with self.store.lock:
                result = _json(handler(call))
            response = Response(200, result)
        except StripeError as error:
            if key and not error.saved:
                self.idempotency.forget(api_key, key)
                raise
            response = Response(error.status, _json(error.body(call.request_id)), dict(error.headers))
        except Exception:
            log.exception("emulator handler crashed path=%s", call.path)
            response = Response(500, _json(server_error(500, saved=True).body(call.request_id)))
        if key:
            self.idempotency.finish(api_key, key, response.status, response.body, dict(response.headers))
        if fault is not None and fault.phase == "after":
            # The work is done and remembered; only the answer is lost on the way back.
            error = self._fault_error(fault)
            return Response(error.status, _json(error.body(call.request_id)), dict(error.headers)), False
        return response, False

    @staticmethod
    def _fault_error(fault, saved: bool = False) -> StripeError:
        if fault.status == 400:
            return ParamError(fault.message or "Invalid request.", param=fault.param, code=None)
        if fault.status == 429:
            return rate_limited("global-rate", fault.code)
        if fault.status == 409:
            return UnsavedError(
                409,
                "There is currently another in-progress request using this Stripe token. Please try again later.",
                code="lock_timeout",
                headers={"Stripe-Should-Retry": "true"},
            )
        return server_error(fault.status, saved=saved)

    @staticmethod
    def _authenticate(authorization: str | None) -> str:
        if not authorization:
            raise unauthenticated(
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#"
                "authentication for details, or we can help at https://support.stripe.com/."
            )
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                credentials = base64.b64decode(credentials).decode().split(":", 1)[0]
            except ValueError:
                credentials = ""
        elif scheme.lower() != "bearer":
            raise unauthenticated("Invalid Authorization header: use Bearer auth with your secret key.")
        key = credentials.strip()
        if not TEST_KEY.match(key) and not PUBLISHABLE_KEY.match(key):
            shown = f"{key[:8]}{'*' * 4}{key[-4:]}" if len(key) > 12 else "****"
            raise unauthenticated(f"Invalid API Key provided: {shown}")
        return key
