"""`/v1/events` and `/v1/webhook_endpoints`."""

import secrets

from .errors import ParamError, missing
from .listing import paginate
from .params import apply_metadata, boolean, string, string_list
from .routing import Call, Router
from .store import API_VERSION, Store, new_id, now

router = Router()


@router.add("GET", "/v1/events/{id}")
def events_retrieve(call: Call) -> dict:
    return call.store.require("event", call.args["id"])


@router.add("GET", "/v1/events")
def events_list(call: Call) -> dict:
    wanted = string(call.params, "type")
    types = set(string_list(call.params, "types"))
    if wanted and types:
        raise ParamError("You may only specify one of these parameters: type, types.", param="type")

    def matches(event_type: str) -> bool:
        if types:
            return event_type in types
        if wanted and wanted.endswith("*"):
            return event_type.startswith(wanted[:-1])
        return wanted is None or event_type == wanted

    events = [event for event in call.store.newest_first("event") if matches(event["type"])]
    return paginate(events, call.params, "/v1/events")


# --- webhook endpoints ------------------------------------------------------------------------------


def create_endpoint(store: Store, url: str, enabled_events: list[str], secret: str | None = None, **fields) -> dict:
    """Also used by the command line's `--webhook-url`, which may bring its own secret."""
    endpoint = {
        "id": new_id("webhook_endpoint"),
        "object": "webhook_endpoint",
        "api_version": fields.get("api_version"),
        "application": None,
        "created": now(),
        "description": fields.get("description"),
        "enabled_events": enabled_events,
        "livemode": False,
        "metadata": fields.get("metadata", {}),
        "status": "enabled",
        "url": url,
    }
    store.add(endpoint)
    store.webhook_secrets[endpoint["id"]] = secret or f"whsec_{secrets.token_hex(24)}"
    return endpoint


def _enabled_events(call: Call, required: bool) -> list[str] | None:
    if "enabled_events" not in call.params:
        if required:
            raise missing("enabled_events")
        return None
    events = string_list(call.params, "enabled_events")
    if not events:
        raise ParamError("enabled_events must contain at least one event type.", param="enabled_events")
    return events


def _endpoint_url(call: Call, required: bool) -> str | None:
    url = string(call.params, "url", required=required)
    if url is not None and not url.startswith(("http://", "https://")):
        raise ParamError("Invalid URL: must be an http or https URL.", param="url", code="url_invalid")
    return url


@router.add("POST", "/v1/webhook_endpoints")
def endpoints_create(call: Call) -> dict:
    url = _endpoint_url(call, required=True)
    enabled = _enabled_events(call, required=True)
    endpoint = create_endpoint(
        call.store,
        url,
        enabled,
        description=string(call.params, "description"),
        metadata=apply_metadata({}, call.params),
        api_version=string(call.params, "api_version") or API_VERSION,
    )
    # The secret is shown once, in the answer to the creation.
    return {**endpoint, "secret": call.store.webhook_secrets[endpoint["id"]]}


@router.add("GET", "/v1/webhook_endpoints/{id}")
def endpoints_retrieve(call: Call) -> dict:
    return call.store.require("webhook_endpoint", call.args["id"])


@router.add("POST", "/v1/webhook_endpoints/{id}")
def endpoints_update(call: Call) -> dict:
    endpoint = call.store.require("webhook_endpoint", call.args["id"])
    url = _endpoint_url(call, required=False)
    enabled = _enabled_events(call, required=False)
    if url:
        endpoint["url"] = url
    if enabled:
        endpoint["enabled_events"] = enabled
    if "description" in call.params:
        endpoint["description"] = string(call.params, "description") or None
    endpoint["metadata"] = apply_metadata(endpoint["metadata"], call.params)
    disabled = boolean(call.params, "disabled")
    if disabled is not None:
        endpoint["status"] = "disabled" if disabled else "enabled"
    return endpoint


@router.add("DELETE", "/v1/webhook_endpoints/{id}")
def endpoints_delete(call: Call) -> dict:
    endpoint = call.store.require("webhook_endpoint", call.args["id"])
    call.store.remove("webhook_endpoint", endpoint["id"])
    call.store.webhook_secrets.pop(endpoint["id"], None)
    return {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}


@router.add("GET", "/v1/webhook_endpoints")
def endpoints_list(call: Call) -> dict:
    return paginate(call.store.newest_first("webhook_endpoint"), call.params, "/v1/webhook_endpoints")
