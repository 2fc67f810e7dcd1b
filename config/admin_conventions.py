"""What the admin pages of every app share."""

from django.contrib import admin

from config.bounded_count import BoundedCountPaginator


class RecordAdmin(admin.ModelAdmin):
    """Rows that record what happened (Stripe's word, a message sent): operators read them and act through
    actions; no form adds, changes or removes one."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class GrowingTableAdmin(admin.ModelAdmin):
    """A changelist over a table that grows without end (orders, payments, events): its pages are counted up to
    a bound (config/bounded_count.py; the page says "at least" beyond it), a filtered page counts only what it
    shows, and no date hierarchy (its year and month links read every row's date)."""

    paginator = BoundedCountPaginator
    show_full_result_count = False


def recent_values_filter(field: str, title: str) -> type[admin.SimpleListFilter]:
    """A filter by `field` offering the values of the rows a page can reach (the newest, as many as are
    counted): Django's own lists every value the whole table holds (a `SELECT DISTINCT` over a million rows on
    each page). Any value still filters."""

    class RecentValues(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request, model_admin):
            rows = BoundedCountPaginator.limit
            newest = model_admin.get_queryset(request).order_by("-pk")
            oldest_counted = newest.values_list("pk", flat=True)[rows - 1 : rows].first()
            recent = newest if oldest_counted is None else newest.filter(pk__gte=oldest_counted)
            values = recent.exclude(**{field: ""}).order_by().values_list(field, flat=True).distinct()
            return [(value, value) for value in sorted(values)]

        def queryset(self, request, queryset):
            return queryset.filter(**{field: self.value()}) if self.value() else queryset

    RecentValues.title = title
    RecentValues.__name__ = RecentValues.__qualname__ = f"Recent{field.title().replace('_', '')}Filter"
    return RecentValues
