"""The orders' tasks: the nightly comparison of our money records with Stripe's, and the refunds whose answer was
lost. A task first published before payments had slices keeps its name (`name=`): the beat's schedule uses it."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.payments.orders import reconcile_money, refunds, unstarted


@shared_task(name="apps.payments.tasks.books_check_task", ignore_result=True)
def reconcile_money_task() -> int:
    """Beat, nightly: compare the last `BOOKS_CHECK_DAYS` of our books with Stripe's; answers the drift found."""
    if not settings.STRIPE_MIRROR_ENABLED:
        return 0
    return reconcile_money.reconcile_money(since=timezone.now() - timedelta(days=settings.BOOKS_CHECK_DAYS)).drift_count


@shared_task(ignore_result=True)
def refund_requests_finish_task() -> int:
    """Beat: finish refunds asked for here whose answer never came (a process that died between asking Stripe
    and recording the refund, Stripe not answering); answers how many were settled."""
    return refunds.refund_requests_finish()


@shared_task(ignore_result=True)
def unstarted_orders_close_task() -> int:
    """Beat: close orders whose session or intent Stripe never answered for and no retry came back to (or
    apply what the payer paid meanwhile); answers how many were closed."""
    return unstarted.unstarted_orders_close()
