"""The OpenAPI schema declares every answer an operation can give, errors included.

drf-spectacular documents the success only; clients (and the schema fuzzer in the tests) need the 400 with
field errors, the 401/403 of auth and permissions, the 404 of an unknown id, the 429 of a rate limit and the
409/502/503 of money moving. Each is read off the view: what it authenticates, permits, throttles and raises.
"""

from drf_spectacular.openapi import AutoSchema
from rest_framework import permissions, serializers
from rest_framework_simplejwt.views import TokenViewBase


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)


class ServiceErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    request_id = serializers.CharField(required=False, help_text="Quote it: the logs carry the same id.")


FIELD_ERRORS = {
    "type": "object",
    "description": "Field errors: each field (or `non_field_errors`) with its messages.",
    "additionalProperties": {},
}


class ApiSchema(AutoSchema):
    def get_auth(self):
        auth = super().get_auth()
        # Anyone may read the catalog: say so, as drf-spectacular does for DRF's own read-only permissions.
        anonymous_reads = all(
            isinstance(permission, permissions.AllowAny) or getattr(permission, "allows_anonymous_reads", False)
            for permission in self.view.get_permissions()
        )
        if self.method in permissions.SAFE_METHODS and anonymous_reads and {} not in auth:
            auth.append({})
        return auth

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, (description, schema) in self._error_responses().items():
            responses.setdefault(
                str(code), {"description": description, "content": {"application/json": {"schema": schema}}}
            )
        return responses

    def _error_responses(self) -> dict[int, tuple[str, dict]]:
        view = self.view
        error = self.resolve_serializer(ErrorSerializer, "response").ref
        found: dict[int, tuple[str, dict]] = {}
        takes_input = (
            self.method in ("POST", "PUT", "PATCH")
            or bool(self._get_filter_parameters())
            or any(getattr(parameter, "location", "") == "query" for parameter in self.get_override_parameters())
        )
        if takes_input or self._is_list_view():
            found[400] = ("Bad input, with field errors; nothing was changed.", FIELD_ERRORS)
        # simplejwt's views authenticate no one, but answer a wrong password or a bad token with a 401.
        if view.get_authenticators() or isinstance(view, TokenViewBase):
            found[401] = ("Missing, expired or revoked credentials.", error)
        if not all(isinstance(permission, permissions.AllowAny) for permission in view.get_permissions()):
            found[403] = ("Signed in, but not allowed to do this.", error)
        if "{" in self.path or self._is_list_view():
            found[404] = ("No such object (or not yours), or no such page.", error)
        if getattr(view, "answers_money_errors", False):
            service = self.resolve_serializer(ServiceErrorSerializer, "response").ref
            found[409] = ("Refused as things stand (the order's state, a reused key, a price not in Stripe).", error)
            found[502] = ("The payment provider refused the request; nothing was changed.", service)
            found[503] = (
                "The payment provider cannot be reached, or does not hold what this needs yet; nothing was charged. "
                "`Retry-After` says when to try again.",
                service,
            )
        if view.get_throttles():
            found[429] = ("Too many requests; `Retry-After` says when to try again.", error)
        return found
