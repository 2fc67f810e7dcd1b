"""Pages over tables that grow without end (orders, payments, events): counted up to a bound, never whole.

An exact `COUNT(*)` of a million orders reads the million on every page; a count that stops at `COUNTED_UP_TO`
rows, and pages that reach that deep and no deeper, cost the same at any table size. Older rows are reached by
narrowing the list (a date range, a status, an email), as an operator does anyway.
"""

from django.core.paginator import Paginator
from django.utils.functional import cached_property

COUNTED_UP_TO = 10_000


class BoundedCountPaginator(Paginator):
    """Django's paginator, with `count` exact up to `COUNTED_UP_TO` rows and `capped` when there are more."""

    limit = COUNTED_UP_TO
    capped = False

    @cached_property
    def count(self) -> int:
        # One `SELECT COUNT(*) FROM (... LIMIT n + 1)`: it stops reading at the bound.
        counted = self.object_list[: self.limit + 1].count()
        self.capped = counted > self.limit
        return min(counted, self.limit)

    def beyond_the_bound(self, number) -> bool:
        """A page past the last one counted, where rows were left uncounted (not page 0, nor a non-number: the
        caller answers those as it answers any page that is not there)."""
        try:
            return int(number) > self.num_pages and self.capped  # num_pages counts, which sets `capped`
        except (TypeError, ValueError):
            return False
