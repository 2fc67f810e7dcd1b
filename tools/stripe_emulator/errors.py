"""Stripe's error responses: the JSON body, the status code and the headers clients read."""

DOCS = "https://stripe.com/docs/error-codes"


class StripeError(Exception):
    """An error answered in Stripe's shape. `saved` says whether an idempotency key remembers it.

    Stripe saves a result once an endpoint has started executing; errors raised
    before (bad parameters, authentication, rate limits) are not remembered, so a
    retry with the same key runs again.
    """

    saved = True

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self, request_id: str | None = None) -> dict:
        error = {"message": self.message, "type": self.type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"{DOCS}#{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        if request_id:
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        error.update(self.extra)
        return {"error": error}


class ParamError(StripeError):
    """The request's parameters are wrong; nothing ran, so nothing is remembered."""

    saved = False

    def __init__(self, message: str, *, param: str | None = None, code: str | None = "parameter_invalid"):
        super().__init__(400, message, param=param, code=code)


class UnsavedError(StripeError):
    """An error raised in front of the endpoint (auth, rate limit, injected fault): never remembered."""

    saved = False


def missing(param: str) -> ParamError:
    return ParamError(f"Missing required param: {param}.", param=param, code="parameter_missing")


def unknown_param(param: str) -> ParamError:
    return ParamError(f"Received unknown parameter: {param}", param=param, code="parameter_unknown")


def no_such(kind: str, object_id: str, param: str = "id", status: int = 404) -> StripeError:
    return StripeError(status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def unauthenticated(message: str) -> UnsavedError:
    return UnsavedError(401, message)


def rate_limited(reason: str, code: str = "rate_limit") -> UnsavedError:
    if code == "lock_timeout":
        message = (
            "This object cannot be accessed right now because another API request or Stripe process is "
            "currently accessing it. If you see this error intermittently, retry the request."
        )
        headers = {"Stripe-Should-Retry": "true"}
    else:
        message = "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
        headers = {"Stripe-Rate-Limited-Reason": reason}
    return UnsavedError(429, message, code=code, headers=headers)


def server_error(status: int, *, saved: bool) -> StripeError:
    messages = {
        500: "An unknown error occurred",
        502: "Bad gateway",
        503: "The Stripe API is temporarily unavailable. Please try again.",
    }
    error_class = StripeError if saved else UnsavedError
    # A saved 500 would only be replayed, so Stripe tells clients not to retry it.
    retry = "false" if saved else "true"
    return error_class(
        status,
        messages.get(status, "An unknown error occurred"),
        type="api_error",
        headers={"Stripe-Should-Retry": retry},
    )
