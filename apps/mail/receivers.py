"""Mail's answer to what users and payments announce: write the message now, send it after commit."""

from django.dispatch import receiver

from apps.mail import messages
from apps.mail.models import MessageKind
from apps.payments import signals as payments_signals
from apps.payments.signals import order_canceled, order_paid, order_refunded, payment_failed
from apps.users.signals import email_verification_requested, user_registered


@receiver(user_registered, dispatch_uid="mail.welcome")
def mail_welcome(sender, user_id, **kwargs):
    messages.welcome_queue(user_id=user_id)


@receiver(email_verification_requested, dispatch_uid="mail.verify_email")
def mail_verification(sender, user_id, request_id, **kwargs):
    messages.verification_queue(user_id=user_id, request_id=request_id)


@receiver(order_paid, dispatch_uid="mail.receipt")
def mail_receipt(sender, order_id, **kwargs):
    messages.receipt_queue(order_id=order_id)


@receiver(payment_failed, dispatch_uid="mail.payment_failed")
def mail_payment_failed(sender, order_id, **kwargs):
    messages.payment_failed_queue(order_id=order_id)


@receiver(order_refunded, dispatch_uid="mail.refund")
def mail_refund(sender, order_id, refund_id, **kwargs):
    messages.refund_queue(order_id=order_id, refund_id=refund_id)


@receiver(order_canceled, dispatch_uid="mail.order_canceled")
def mail_order_canceled(sender, order_id, **kwargs):
    messages.order_canceled_queue(order_id=order_id)


SUBSCRIPTION_MESSAGES = {
    payments_signals.subscription_started: MessageKind.SUBSCRIPTION_STARTED,
    payments_signals.subscription_renewed: MessageKind.SUBSCRIPTION_RENEWED,
    payments_signals.subscription_payment_failed: MessageKind.SUBSCRIPTION_PAYMENT_FAILED,
    payments_signals.subscription_trial_ending: MessageKind.SUBSCRIPTION_TRIAL_ENDING,
    payments_signals.subscription_canceled: MessageKind.SUBSCRIPTION_CANCELED,
}


def mail_subscription(sender, signal, news, **kwargs):
    messages.subscription_queue(news=news, kind=SUBSCRIPTION_MESSAGES[signal])


for _signal, _kind in SUBSCRIPTION_MESSAGES.items():
    _signal.connect(mail_subscription, dispatch_uid=f"mail.{_kind}")
