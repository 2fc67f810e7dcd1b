"""What payments does when users or the catalog change: record, in the same transaction, that Stripe must follow."""

from django.dispatch import receiver

from apps.catalog.signals import price_changed, price_deleted, product_changed, product_deleted
from apps.payments.mirror.models import MirrorKind
from apps.payments.mirror.outbox import mirror_record_change
from apps.users.signals import user_changed, user_deleted, user_registered

# The customer fields Stripe holds; other profile changes need no Stripe call.
CUSTOMER_FIELDS = frozenset({"email", "name"})


@receiver(user_registered, dispatch_uid="payments.mirror.user_registered")
def mirror_registered_user(sender, user_id, **kwargs):
    mirror_record_change(kind=MirrorKind.USER, object_id=user_id)


@receiver(user_changed, dispatch_uid="payments.mirror.user_changed")
def mirror_changed_user(sender, user_id, fields, **kwargs):
    if CUSTOMER_FIELDS.intersection(fields):
        mirror_record_change(kind=MirrorKind.USER, object_id=user_id)


@receiver(user_deleted, dispatch_uid="payments.mirror.user_deleted")
def mirror_deleted_user(sender, user_id, **kwargs):
    mirror_record_change(kind=MirrorKind.USER, object_id=user_id, deleted=True)


@receiver(product_changed, dispatch_uid="payments.mirror.product_changed")
@receiver(product_deleted, dispatch_uid="payments.mirror.product_deleted")
def mirror_product(sender, product_id, **kwargs):
    # Deleting a product archives it: in Stripe too, an update to active=false.
    mirror_record_change(kind=MirrorKind.PRODUCT, object_id=product_id)


@receiver(price_changed, dispatch_uid="payments.mirror.price_changed")
@receiver(price_deleted, dispatch_uid="payments.mirror.price_deleted")
def mirror_price(sender, price_id, **kwargs):
    mirror_record_change(kind=MirrorKind.PRICE, object_id=price_id)
