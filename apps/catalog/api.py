"""`/api/v1/products` and `/api/v1/prices`: anyone reads what is on sale; staff write through the services."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.response import Response

from apps.catalog import selectors, services
from apps.catalog.filters import PriceFilter, ProductFilter
from apps.catalog.serializers import (
    PriceInputSerializer,
    PriceOutputSerializer,
    ProductInputSerializer,
    ProductOutputSerializer,
)
from config.api_conventions import is_staff_with


class CatalogPermission(permissions.DjangoModelPermissions):
    """Anyone reads; staff write with the model's permission: add to create, change to edit or archive
    (`DELETE` archives, so it is a change, as the admin's "Archive" action is)."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "DELETE": ["%(app_label)s.change_%(model_name)s"],
    }
    allows_anonymous_reads = True

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_staff and super().has_permission(request, view))


def _sees_archived(request, model: str) -> bool:
    return is_staff_with(request, f"catalog.view_{model}")


class CatalogViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Reads through selectors, writes through services; `DELETE` archives."""

    permission_classes = (CatalogPermission,)
    input_serializer_class: type
    output_serializer_class: type

    def get_serializer_class(self):
        if self.action in ("create", "update", "partial_update"):
            return self.input_serializer_class
        return self.output_serializer_class

    def _write(self, request, instance=None, partial=False):
        serializer = self.input_serializer_class(instance, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        saved = self.service_save(instance=instance, data=serializer.validated_data)
        return self.output_serializer_class(self.read_back(saved)).data

    def create(self, request, *args, **kwargs):
        return Response(self._write(request), status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        return Response(self._write(request, self.get_object(), partial=kwargs.get("partial", False)))

    def destroy(self, request, *args, **kwargs):
        self.service_archive(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def service_save(self, *, instance, data):
        raise NotImplementedError

    def service_archive(self, instance) -> None:
        raise NotImplementedError

    def read_back(self, instance):
        return instance


def _catalog_schema(noun: str, output_serializer: type):
    """Writes take the input serializer and answer with the output one; say so in the schema."""
    return extend_schema_view(
        list=extend_schema(summary=f"List {noun}s on sale (staff: filter `active=false` for archived)"),
        retrieve=extend_schema(summary=f"One {noun}"),
        create=extend_schema(responses={201: output_serializer}),
        update=extend_schema(responses=output_serializer),
        partial_update=extend_schema(responses=output_serializer),
        destroy=extend_schema(summary=f"Archive a {noun}"),
    )


@_catalog_schema("product", ProductOutputSerializer)
class ProductViewSet(CatalogViewSet):
    input_serializer_class = ProductInputSerializer
    output_serializer_class = ProductOutputSerializer
    filterset_class = ProductFilter
    search_fields = ("name",)
    ordering_fields = ("name", "created_at", "updated_at")

    def get_queryset(self):
        return selectors.product_list(include_archived=_sees_archived(self.request, "product"))

    def service_save(self, *, instance, data):
        if instance is None:
            return services.product_create(**data)
        return services.product_update(product=instance, data=data)

    def service_archive(self, instance) -> None:
        services.product_archive(product=instance)

    def read_back(self, instance):
        return selectors.product_get(product_id=instance.pk, include_archived=True)


@_catalog_schema("price", PriceOutputSerializer)
class PriceViewSet(CatalogViewSet):
    input_serializer_class = PriceInputSerializer
    output_serializer_class = PriceOutputSerializer
    filterset_class = PriceFilter
    search_fields = ("product__name",)
    ordering_fields = ("unit_amount", "currency", "created_at", "updated_at")

    def get_queryset(self):
        return selectors.price_list(include_archived=_sees_archived(self.request, "price"))

    def service_save(self, *, instance, data):
        if instance is None:
            return services.price_create(**data)
        data = {field: value for field, value in data.items() if field != "product"}
        return services.price_update(price=instance, data=data)

    def service_archive(self, instance) -> None:
        services.price_archive(price=instance)
