"""Operators edit the catalog here; every save goes through `catalog.services`, so the same signals fire."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q

from apps.catalog import services
from apps.catalog.models import Price, Product

PRICE_FIELDS = ("unit_amount", "currency", "recurring_interval", "recurring_interval_count", "trial_days", "active")


def _save_price(*, price: Price, form, product: Product | None = None) -> Price:
    data = {field: form.cleaned_data.get(field) for field in PRICE_FIELDS if field in form.cleaned_data}
    if price.pk is None:
        return services.price_create(product=product or form.cleaned_data["product"], **data)
    stored = Price.objects.get(pk=price.pk)
    changed = {field: data[field] for field in form.changed_data if field in data}
    return services.price_update(price=stored, data=changed)


def _adopt(obj, saved) -> None:
    """The admin goes on with its own instance (log entry, redirect): make it the saved row."""
    obj.pk = saved.pk
    obj._state.adding = False


class PriceAdminForm(forms.ModelForm):
    class Meta:
        model = Price
        fields = ("product", *PRICE_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "recurring_interval_count" in self.fields:
            self.fields["recurring_interval_count"].required = False  # left empty: every interval

    def clean_recurring_interval_count(self):
        return self.cleaned_data.get("recurring_interval_count") or 1

    def clean(self):
        cleaned = super().clean()
        product = cleaned.get("product") or getattr(self.instance, "product", None)
        if product is not None and product.pk and cleaned.get("active") and not product.active:
            self.add_error("active" if "product" not in self.fields else "product", services.ARCHIVED_PRODUCT)
        return cleaned


class PriceInline(admin.TabularInline):
    model = Price
    form = PriceAdminForm
    fields = (*PRICE_FIELDS, "created_at")
    readonly_fields = ("created_at",)
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "active", "active_price_count", "created_at", "updated_at")
    list_filter = ("active", ("created_at", admin.DateFieldListFilter))
    search_fields = ("name", "description")
    readonly_fields = ("created_at", "updated_at")
    inlines = (PriceInline,)
    actions = ("archive_selected",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_active_prices=Count("prices", filter=Q(prices__active=True)))

    @admin.display(description="active prices", ordering="_active_prices")
    def active_price_count(self, obj) -> int:
        return obj._active_prices

    def has_delete_permission(self, request, obj=None) -> bool:
        # Orders point at products: they are archived, never deleted.
        return False

    def save_model(self, request, obj, form, change) -> None:
        data = {field: form.cleaned_data[field] for field in services.PRODUCT_FIELDS if field in form.cleaned_data}
        if not change:
            _adopt(obj, services.product_create(**data))
            return
        changed = {field: data[field] for field in form.changed_data if field in data}
        services.product_update(product=Product.objects.get(pk=obj.pk), data=changed)

    def save_formset(self, request, form, formset, change) -> None:
        # What `formset.save()` would record, for the admin's history message.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            if not inline_form.has_changed() or not inline_form.is_valid():
                continue
            price = inline_form.instance
            is_new = price.pk is None
            _adopt(price, _save_price(price=price, form=inline_form, product=form.instance))
            if is_new:
                formset.new_objects.append(price)
            else:
                formset.changed_objects.append((price, inline_form.changed_data))

    @admin.action(description="Archive selected products", permissions=["change"])
    def archive_selected(self, request, queryset) -> None:
        for product in queryset:
            services.product_archive(product=product)
        self.message_user(request, f"Archived {queryset.count()} product(s).", messages.SUCCESS)


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    form = PriceAdminForm
    list_display = ("id", "product", *PRICE_FIELDS, "created_at")
    list_filter = ("active", "currency", "recurring_interval", ("created_at", admin.DateFieldListFilter))
    search_fields = ("product__name", "=id")
    list_select_related = ("product",)
    autocomplete_fields = ("product",)
    readonly_fields = ("created_at", "updated_at")
    actions = ("archive_selected",)

    def get_readonly_fields(self, request, obj=None):
        # A price never moves to another product once it exists.
        return (*self.readonly_fields, "product") if obj else self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        _adopt(obj, _save_price(price=obj, form=form))

    @admin.action(description="Archive selected prices", permissions=["change"])
    def archive_selected(self, request, queryset) -> None:
        for price in queryset:
            services.price_archive(price=price)
        self.message_user(request, f"Archived {queryset.count()} price(s).", messages.SUCCESS)
