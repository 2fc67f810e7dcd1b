"""Access that follows a subscription, for any app's views.

    from apps.payments.billing.permissions import plan_required

    class ReportsApi(APIView):
        permission_classes = (IsAuthenticated, plan_required(product_id=7))

A user passes while a subscription to one of the product's plans is trialing, active, or past due
(Stripe is still retrying the card); canceled or unpaid is a 403 that names the plan.
"""

from rest_framework.permissions import BasePermission

from apps.catalog.models import Product
from apps.payments.billing.selectors import user_has_active_plan


def plan_required(*, product_id: int) -> type[BasePermission]:
    """A DRF permission class: the user holds an active plan of this catalog product."""

    class HasActivePlan(BasePermission):
        def has_permission(self, request, view) -> bool:
            product = Product.objects.filter(pk=product_id).first()
            if product is None or not getattr(request.user, "is_authenticated", False):
                return False
            self.message = f"This needs an active subscription to {product.name}."
            return user_has_active_plan(request.user, product)

    HasActivePlan.__qualname__ = f"HasActivePlan[{product_id}]"
    return HasActivePlan
