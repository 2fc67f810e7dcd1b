"""Billing's task: a subscription read again from Stripe by a worker, after a change made here whose answer
may not be the newest state (`changes.SUBSCRIPTION_REFRESH_TASK`)."""

from celery import shared_task

from apps.payments.billing.store import subscription_refresh
from apps.payments.gateway.errors import StripeUnavailable
from apps.payments.orders.errors import EventNotReady


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=20, ignore_result=True)
def subscription_refresh_task(self, subscription_id: str) -> None:
    try:
        subscription_refresh(subscription_id, cause="read again after a change made here")
    except (EventNotReady, StripeUnavailable) as error:  # overtaken while read, or Stripe busy: a moment later
        raise self.retry(countdown=getattr(error, "retry_after", 2)) from error
