"""What every endpoint of the API shares: the error shape, pagination, stable ordering and routes."""

import logging
import math

import django_filters
from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import InvalidPage
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, filters, pagination, permissions, routers, serializers, throttling
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from config.bounded_count import COUNTED_UP_TO, BoundedCountPaginator
from config.days import day_end, day_start
from config.errors import Conflict, DomainError, Unavailable, UpstreamRefused
from config.request_id import current_request_id

log = logging.getLogger("config.api")

# What each kind of refusal a service raises is, over HTTP: one table for every view.
# The first kind that matches answers; a refusal of no particular kind is a plain 400.
DOMAIN_ERROR_STATUS: dict[type[DomainError], int] = {
    Conflict: 409,
    UpstreamRefused: 502,
    Unavailable: 503,
    DomainError: 400,
}


def exception_handler(exc, context):
    """Services raise Django's `ValidationError` and the refusals of `config.errors` (they know nothing of
    HTTP); answer the first with the 400 body DRF's serializers produce, `{"field": ["message"]}`, the others
    with their status and a clear `detail`, never a 500."""
    if isinstance(exc, DomainError):
        return domain_error_answer(exc)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    elif isinstance(exc, exceptions.ValidationError) and not isinstance(exc.detail, dict):
        # A bare list of messages (a check outside any serializer field): still the one 400 shape.
        exc = exceptions.ValidationError(detail={"non_field_errors": exc.detail})
    return drf_exception_handler(exc, context)


def domain_error_answer(error: DomainError) -> Response:
    """The answer to a refusal: its status by kind; its own words when they are written for the client,
    else a fixed text, with the error itself in the log under the request id the answer carries."""
    status = next(code for kind, code in DOMAIN_ERROR_STATUS.items() if isinstance(error, kind))
    # A client told to come back is told when: nothing was done, and a worker is making it possible meanwhile.
    headers = {"Retry-After": str(max(1, math.ceil(error.retry_after)))} if isinstance(error, Unavailable) else None
    if not error.public_detail:
        return Response({"detail": str(error)}, status=status, headers=headers)
    log.warning("request refused status=%s error=%s: %s", status, type(error).__name__, error)
    return Response({"detail": error.public_detail, "request_id": current_request_id()}, status=status, headers=headers)


class StrictFilterSet(django_filters.FilterSet):
    """A filter given with no value (`?currency=`) is a 400, not silently no filter at all."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name in self.filters:
            if name in self.data and str(self.data.get(name, "")).strip() == "":
                self.form.add_error(name, "Give a value, or leave the parameter out.")
                valid = False
        return valid


class CreatedBetweenFilterSet(StrictFilterSet):
    """`?date_from=` and `?date_to=` (days, both included, in the site's time zone) on `created_at`,
    compared as times so the index on `created_at` serves them."""

    date_from = django_filters.DateFilter(method="created_from", help_text="First day (included).")
    date_to = django_filters.DateFilter(method="created_to", help_text="Last day (included).")

    def created_from(self, queryset, name, value):
        return queryset.filter(created_at__gte=day_start(value))

    def created_to(self, queryset, name, value):
        end = day_end(value)
        return queryset if end is None else queryset.filter(created_at__lt=end)


class StrictSearchFilter(filters.SearchFilter):
    """`?search=` with what no search can hold (a NUL character) is a 400 naming `search`. Only a view with
    `search_fields` documents `search`: elsewhere the parameter would be accepted and change nothing."""

    def get_schema_operation_parameters(self, view):
        if not getattr(view, "search_fields", None):
            return []
        return super().get_schema_operation_parameters(view)

    def get_search_terms(self, request):
        try:
            return super().get_search_terms(request)
        except exceptions.ValidationError as error:
            raise exceptions.ValidationError({self.search_param: error.detail}) from error


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=2&page_size=50`; answers `count`, `next`, `previous`, `results`. A page size that is not a
    number from 1 to 100 is a 400 (DRF would quietly use the default instead)."""

    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        given = request.query_params.getlist(self.page_size_query_param)
        if not given:
            return self.page_size
        number = given[0]
        is_number = number.isascii() and number.isdigit() and len(number) <= 3
        if len(given) > 1 or not is_number or not 1 <= int(number) <= self.max_page_size:
            raise exceptions.ValidationError({"page_size": [f"Enter one whole number from 1 to {self.max_page_size}."]})
        return int(number)

    def get_page_number(self, request, paginator):
        # DRF reads `?page=` (empty) as page 1; a page given is a number (or `last`), else a 400.
        given = request.query_params.get(self.page_query_param)
        if given is not None and given not in self.last_page_strings and not (given.isascii() and given.isdigit()):
            raise exceptions.ValidationError({self.page_query_param: ["Enter a page number."]})
        return super().get_page_number(request, paginator)


class BoundedPageNumberPagination(PageNumberPagination):
    """Page numbers over a table that grows without end: `count` is exact up to 10,000 rows (`count_exact`
    false beyond, where it says "at least"), and pages reach that deep; older rows are found by narrowing the
    list (`date_to`, a status, an email). Every page costs the same at any table size (config/bounded_count.py)."""

    django_paginator_class = BoundedCountPaginator

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        paginator = self.django_paginator_class(queryset, self.get_page_size(request))
        number = self.get_page_number(request, paginator)
        if paginator.beyond_the_bound(number):
            raise exceptions.ValidationError(
                {
                    self.page_query_param: [
                        f"Lists reach {paginator.limit:,} rows deep: narrow this one (date_to, a status, an email) "
                        "to reach older rows."
                    ]
                }
            )
        try:
            self.page = paginator.page(number)
        except InvalidPage as error:
            raise exceptions.NotFound(self.invalid_page_message) from error
        self.display_page_controls = paginator.num_pages > 1
        return list(self.page)

    def get_paginated_response(self, data):
        answer = super().get_paginated_response(data)
        answer.data["count_exact"] = not self.page.paginator.capped
        return answer

    def get_paginated_response_schema(self, schema):
        described = super().get_paginated_response_schema(schema)
        described["properties"]["count_exact"] = {
            "type": "boolean",
            "description": f"False when more than {COUNTED_UP_TO:,} rows match: `count` is then a lower bound.",
        }
        described["required"] = [*described.get("required", []), "count_exact"]
        return described


class StrictCharField(serializers.CharField):
    """Text is a JSON string: DRF's own field would also take `934071` or `1.5` and store their digits."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictJSONBooleanField(serializers.BooleanField):
    """A JSON `true` or `false`: DRF's own field would also take `0.0`, `1` or `"off"`, which the schema does not
    allow and a client sending them most likely meant something else by."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StableOrderingFilter(filters.OrderingFilter):
    """`?ordering=name`: ties are broken by id, so a row never shows on two pages or none. A field that
    cannot be ordered by is a 400 naming the ones that can (DRF would quietly ignore it)."""

    def remove_invalid_fields(self, queryset, fields, view, request):
        valid = super().remove_invalid_fields(queryset, fields, view, request)
        if len(valid) != len(fields):
            allowed = sorted(name for name, _ in self.get_valid_fields(queryset, view, {"request": request}))
            raise exceptions.ValidationError(
                {self.ordering_param: [f"Order by one of: {', '.join(allowed)} (a leading - reverses)."]}
            )
        return valid

    def get_ordering(self, request, queryset, view):
        ordering = super().get_ordering(request, queryset, view)
        if ordering and not any(field.lstrip("-") in ("id", "pk") for field in ordering):
            ordering = [*ordering, "-id"]
        return ordering


class OptionalSlashRouter(routers.SimpleRouter):
    """Routes answer with and without a trailing slash: clients write both, and a POST cannot be redirected."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


def staff_with(*perms: str) -> type[permissions.BasePermission]:
    """A permission class: an active staff member holding every one of `perms` (Django's model permissions,
    as the admin grants them). Being staff alone opens nothing."""

    class StaffWith(permissions.BasePermission):
        message = f"This needs the permission{'s' if len(perms) > 1 else ''} {', '.join(perms)}."

        def has_permission(self, request, view) -> bool:
            return is_staff_with(request, *perms)

    StaffWith.__name__ = StaffWith.__qualname__ = f"StaffWith({', '.join(perms)})"
    return StaffWith


def is_staff_with(request, *perms: str) -> bool:
    user = request.user
    return bool(user and user.is_authenticated and user.is_staff and user.has_perms(perms))


class ConfiguredRateThrottle(throttling.SimpleRateThrottle):
    """A throttle whose rate is read from `DEFAULT_THROTTLE_RATES` when asked, not once at import."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]


class StrictBooleanField(forms.NullBooleanField):
    """`true`/`false` (or `1`/`0`); anything else is a 400, where django-filter would drop the filter."""

    widget = forms.TextInput  # the select widget would turn an unknown value into "no filter" before this sees it

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise forms.ValidationError("Enter true or false.", code="invalid")

    def validate(self, value):
        pass


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


def api_not_found(request, exception=None):
    """The 404 of a URL nothing routes: JSON under /api/ (clients parse it), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def api_server_error(request):
    """A 500 under /api/ is JSON too, with the request id the logs carry."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Server error.", "request_id": current_request_id()}, status=500)
    return defaults.server_error(request)
