"""The outbox: write a message once, send it after commit, retry what a mail server defers.

A message is a row before it is anything else (`message_queue`, inside the caller's
transaction). A task sends it (`message_send`): it takes the row with a conditional
update, so two tasks never send the same row at once, talks SMTP without holding a
lock, then records the outcome. A temporary refusal (4xx, a dropped connection) is
retried with backoff; a permanent one (5xx) or the last try leaves the row `failed`
with the server's reason, for an operator to send again.
"""

import logging
import smtplib
from datetime import timedelta
from email.utils import make_msgid, parseaddr

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.mail.models import MessageState, OutgoingMessage
from apps.mail.rendering import message_render
from apps.mail.tasks import message_send_task
from apps.users.validators import validate_deliverable_email

log = logging.getLogger("apps.mail")


class SendDeferred(Exception):
    """The mail server refused for now; the row is queued again and the task should retry after `delay`."""

    def __init__(self, reason: str, delay: float):
        super().__init__(reason)
        self.delay = delay


def message_queue(*, key: str, kind: str, recipient: str, context: dict) -> OutgoingMessage:
    """Write the message, rendered from the data as it is now, unless `key` was written before.

    Runs in the caller's transaction: the row exists exactly when the cause does. It is
    sent once that transaction commits; an address that cannot receive mail is kept as
    `failed` with the reason instead of being tried.
    """
    existing = OutgoingMessage.objects.filter(idempotency_key=key).first()
    if existing is not None:
        log.info("mail already written key=%s state=%s", key, existing.state)
        return existing
    rendered = message_render(kind=kind, context=context)
    refusal = _address_refusal(recipient)
    message, created = OutgoingMessage.objects.get_or_create(
        idempotency_key=key,
        defaults={
            "kind": kind,
            "recipient": recipient,
            "subject": rendered.subject,
            "body_text": rendered.text,
            "body_html": rendered.html,
            "message_id": make_msgid(domain=_sender_domain()),
            "state": MessageState.FAILED if refusal else MessageState.QUEUED,
            "last_error": refusal,
        },
    )
    if not created:  # written meanwhile by a concurrent copy of the same signal
        return message
    if refusal:
        log.warning("mail not sent key=%s reason=%s", key, refusal)
    else:
        message_send_task.apply_async_on_commit((message.pk,))
    return message


def message_send(*, message_id: int, owner: str) -> str:
    """Send one queued message; returns what became of it (`sent`, `failed`, `skipped`), or
    raises `SendDeferred` when the server refused for now and the row waits for a retry.

    `owner` is the task's id: a redelivered task (its worker was killed mid-send) takes
    over its own row at once; anyone else waits for the lease to run out.
    """
    now = timezone.now()
    claimable = (
        Q(state=MessageState.QUEUED)
        | Q(state=MessageState.SENDING, lease_owner=owner)
        | Q(state=MessageState.SENDING, lease_until__lt=now)
    )
    claimed = OutgoingMessage.objects.filter(claimable, pk=message_id).update(
        state=MessageState.SENDING,
        attempts=F("attempts") + 1,
        lease_owner=owner,
        lease_until=now + timedelta(seconds=settings.MAIL_SEND_LEASE_SECONDS),
        updated_at=now,
    )
    if not claimed:
        return "skipped"  # sent, failed, or being sent by someone else
    message = OutgoingMessage.objects.get(pk=message_id)
    try:
        _deliver(message)
    except Exception as error:  # noqa: BLE001 - every failure is recorded on the row; none may lose the message
        return _record_failure(message, error)
    OutgoingMessage.objects.filter(pk=message.pk, lease_owner=owner).update(
        state=MessageState.SENT,
        sent_at=timezone.now(),
        lease_owner="",
        lease_until=None,
        updated_at=timezone.now(),
    )
    log.info("mail sent key=%s kind=%s attempts=%s", message.idempotency_key, message.kind, message.attempts)
    return "sent"


def message_send_again(*, message: OutgoingMessage) -> bool:
    """An operator's "send again" for a failed message: a fresh set of attempts. False if it is not failed."""
    with transaction.atomic():
        again = OutgoingMessage.objects.filter(pk=message.pk, state=MessageState.FAILED).update(
            state=MessageState.QUEUED, attempts=0, next_attempt_at=timezone.now(), updated_at=timezone.now()
        )
        if again:
            message_send_task.apply_async_on_commit((message.pk,))
    return bool(again)


def messages_send_due(*, grace: timedelta, limit: int = 500) -> int:
    """Queue the tasks of messages nobody is sending: queued long past their time (the task was
    lost, the broker was down at commit) or held by a worker whose lease ran out."""
    now = timezone.now()
    due = OutgoingMessage.objects.filter(
        Q(state=MessageState.QUEUED, next_attempt_at__lte=now - grace)
        | Q(state=MessageState.SENDING, lease_until__lt=now)
    ).order_by("next_attempt_at")
    message_ids = list(due.values_list("pk", flat=True)[:limit])
    for message_id in message_ids:
        message_send_task.delay(message_id)
    if message_ids:
        log.info("mail requeued count=%s", len(message_ids))
    return len(message_ids)


def _lease_lost(message: OutgoingMessage, reason: str) -> str:
    log.warning("mail lease lost key=%s owner=%s reason=%s", message.idempotency_key, message.lease_owner, reason)
    return "skipped"


def _deliver(message: OutgoingMessage) -> None:
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[message.recipient],
        headers={"Message-ID": message.message_id},
    )
    email.attach_alternative(message.body_html, "text/html")
    with get_connection(fail_silently=False) as connection:
        connection.send_messages([email])


def _record_failure(message: OutgoingMessage, error: Exception) -> str:
    reason = _describe(error)
    done = {"lease_owner": "", "lease_until": None, "last_error": reason, "updated_at": timezone.now()}
    # Only while the lease is still ours: a sender whose lease ran out may have been overtaken by one that sent
    # the message since, and must not queue it again.
    ours = OutgoingMessage.objects.filter(pk=message.pk, lease_owner=message.lease_owner)
    if _is_permanent(error) or message.attempts >= settings.MAIL_MAX_ATTEMPTS:
        if not ours.update(state=MessageState.FAILED, **done):
            return _lease_lost(message, reason)
        log.warning("mail failed key=%s attempts=%s reason=%s", message.idempotency_key, message.attempts, reason)
        return "failed"
    delay = min(settings.MAIL_RETRY_MAX_SECONDS, settings.MAIL_RETRY_BASE_SECONDS * 2 ** (message.attempts - 1))
    if not ours.update(state=MessageState.QUEUED, next_attempt_at=timezone.now() + timedelta(seconds=delay), **done):
        return _lease_lost(message, reason)
    log.info(
        "mail deferred key=%s attempts=%s retry_in=%.1fs reason=%s",
        message.idempotency_key,
        message.attempts,
        delay,
        reason,
    )
    raise SendDeferred(reason, delay)


def _is_permanent(error: Exception) -> bool:
    """5xx replies mean "do not try this again"; 4xx, timeouts and dropped connections may pass later."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code >= 500
    return isinstance(error, ValueError)  # an address Django cannot write into a header


def _describe(error: Exception) -> str:
    """What the server said, for the admin; never our credentials (SMTP replies do not echo them)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{address}: {code} {_text(reply)}" for address, (code, reply) in error.recipients.items())
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {_text(error.smtp_error)}"
    return f"{type(error).__name__}: {error}"[:2000]


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _address_refusal(recipient: str) -> str:
    if not recipient:
        return "no address to send to"
    try:
        validate_deliverable_email(recipient)
    except ValidationError as error:
        return f"address refused: {' '.join(error.messages)}"
    return ""


def _sender_domain() -> str:
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
