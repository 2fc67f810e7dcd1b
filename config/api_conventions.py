"""What every endpoint of the API shares: the error shape, pagination, stable ordering and routes."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, filters, pagination, routers
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    """Services raise Django's `ValidationError` (they know nothing of HTTP); answer it
    with the 400 body DRF's serializers produce, `{"field": ["message"]}`, never a 500."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    return drf_exception_handler(exc, context)


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=2&page_size=50`; answers `count`, `next`, `previous`, `results`."""

    page_size_query_param = "page_size"
    max_page_size = 100


class StableOrderingFilter(filters.OrderingFilter):
    """`?ordering=name`: ties are broken by id, so a row never shows on two pages or none."""

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
