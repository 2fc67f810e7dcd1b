"""After a soak: the database against Stripe (the emulator) and the mail server, difference by difference.

Runs once the load stopped and the system settled, with Django set up on the soak's database. Every check
names what it compared; every difference is a mismatch with the ids needed to look it up.
"""

from collections import Counter, defaultdict
from email.message import EmailMessage

import stripe

from apps.mail.models import MessageState, OutgoingMessage
from apps.payments.gateway.installation import APP_REF_KEY, is_ours
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.specs import SPECS
from apps.payments.orders.models import Order, OrderRefund, OrderStatus
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState

PAID = {OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}
RESOURCES = {MirrorKind.USER: "customers", MirrorKind.PRODUCT: "products", MirrorKind.PRICE: "prices"}


class Findings:
    def __init__(self):
        self.mismatches: list[dict] = []
        self.counts: dict[str, dict] = defaultdict(dict)

    def mismatch(self, check: str, what: str, **ids) -> None:
        self.mismatches.append({"check": check, "what": what, **{key: str(value) for key, value in ids.items()}})


def _everything(listing) -> list:
    return list(listing.auto_paging_iter())


def check(emulator_url: str, api_key: str, mail: list[EmailMessage], mail_worker_kills: int = 0) -> dict:
    """`mail_worker_kills`: how often the mail worker was killed; each kill may send one message twice."""
    client = stripe.StripeClient(api_key, base_addresses={"api": emulator_url}, max_network_retries=2)
    findings = Findings()
    _orders(findings, client)
    _mail(findings, mail, mail_worker_kills)
    _mirror(findings, client)
    _events(findings, client)
    return {"counts": findings.counts, "mismatches": findings.mismatches}


def _expected_status(session, refunded: int) -> set[str]:
    if session.status == "complete" and session.payment_status == "paid":
        if refunded == 0:
            return {OrderStatus.PAID}
        return {OrderStatus.REFUNDED if refunded >= session.amount_total else OrderStatus.PARTIALLY_REFUNDED}
    if session.status == "expired":
        return {OrderStatus.EXPIRED, OrderStatus.CANCELED}  # canceled: expired by us when its owner canceled
    return {OrderStatus.PENDING, OrderStatus.FAILED}  # open: not paid yet, or declined and open for a second try


def _orders(findings: Findings, client: stripe.StripeClient) -> None:
    """Each order's state, amount, charge and refunds equal its Checkout Session's, its payment intent's and
    its refunds'; every Stripe refund is recorded once; no session lacks its order."""
    sessions = {session.id: session for session in _everything(client.v1.checkout.sessions.list({"limit": 100}))}
    intents = {intent.id: intent for intent in _everything(client.v1.payment_intents.list({"limit": 100}))}
    stripe_refunds = {
        refund.id: refund
        for refund in _everything(client.v1.refunds.list({"limit": 100}))
        if refund.status == "succeeded"
    }
    refunded: Counter = Counter()
    for refund in stripe_refunds.values():
        refunded[refund.payment_intent] += refund.amount
    statuses: Counter = Counter()
    for order in Order.objects.order_by("pk").prefetch_related("refunds").iterator(chunk_size=1000):
        statuses[order.status] += 1
        if not order.checkout_session_id:
            if order.status != OrderStatus.CANCELED:  # Stripe refused the session: canceled, never left pending
                findings.mismatch("orders", f"{order.status} without a Checkout Session", order=order.pk)
            continue
        session = sessions.pop(order.checkout_session_id, None)
        if session is None:
            findings.mismatch("orders", "its Checkout Session is not in Stripe", order=order.pk)
            continue
        _compare_order(findings, order, session, intents.get(session.payment_intent), refunded)
    for session in sessions.values():
        findings.mismatch("orders", f"a {session.status} Checkout Session no order knows", session=session.id)
    local_refunds = {refund.stripe_refund_id: refund for refund in OrderRefund.objects.select_related("order")}
    for refund_id, refund in stripe_refunds.items():
        ours = local_refunds.pop(refund_id, None)
        if ours is None:
            findings.mismatch("refunds", f"Stripe refunded {refund.amount}; not recorded here", refund=refund_id)
        elif ours.amount != refund.amount or ours.order.payment_intent_id != refund.payment_intent:
            findings.mismatch("refunds", f"recorded {ours.amount} of {ours.order.payment_intent_id}, Stripe "
                              f"refunded {refund.amount} of {refund.payment_intent}", refund=refund_id)  # fmt: skip
    for refund_id in local_refunds:
        findings.mismatch("refunds", "recorded here, not refunded by Stripe", refund=refund_id)
    findings.counts["orders"] = dict(statuses, total=sum(statuses.values()))
    findings.counts["refunds"] = {"stripe": len(stripe_refunds), "local": OrderRefund.objects.count()}


def _compare_order(findings: Findings, order: Order, session, intent, refunded: Counter) -> None:
    stripe_refunded = refunded.get(session.payment_intent, 0) if session.payment_intent else 0
    expected = _expected_status(session, stripe_refunded)
    if order.status not in expected:
        findings.mismatch(
            "orders",
            f"{order.status} but the session is {session.status}/{session.payment_status}"
            f" (expected {' or '.join(sorted(expected))})",
            order=order.pk,
            session=session.id,
        )
    if (order.amount_total, order.currency) != (session.amount_total, session.currency):
        findings.mismatch(
            "orders",
            f"the order is {order.amount_total} {order.currency}, "
            f"the session {session.amount_total} {session.currency}",
            order=order.pk,
            session=session.id,
        )
    if order.status in PAID:
        taken = (intent.amount_received, intent.currency) if intent else (0, "")
        if (order.amount_charged, order.currency_charged) != taken or order.payment_intent_id != session.payment_intent:
            findings.mismatch(
                "orders",
                f"charged {order.amount_charged} {order.currency_charged} by {order.payment_intent_id or '-'}, "
                f"Stripe took {taken[0]} {taken[1]} by {session.payment_intent}",
                order=order.pk,
            )
    in_refunds = sum(refund.amount for refund in order.refunds.all())
    if order.amount_refunded != stripe_refunded or order.amount_refunded != in_refunds:
        findings.mismatch(
            "orders",
            f"{order.amount_refunded} refunded here ({in_refunds} in its refunds), {stripe_refunded} in Stripe",
            order=order.pk,
        )


def _mail(findings: Findings, mail: list[EmailMessage], mail_worker_kills: int) -> None:
    """Every paid order's receipt and every refund's notice written once and received; no receipt for an unpaid
    order; nothing left in the outbox; nothing received that the outbox did not send."""
    received = Counter(message["Message-ID"] for message in mail)
    rows = {row.idempotency_key: row for row in OutgoingMessage.objects.all()}
    for order in Order.objects.filter(status__in=PAID).prefetch_related("refunds"):
        if f"receipt:order:{order.pk}" not in rows:
            findings.mismatch("mail", "paid without a receipt", order=order.pk)
        for refund in order.refunds.all():
            if f"refund:order:{order.pk}:{refund.pk}" not in rows:
                findings.mismatch("mail", "refund without its notice", order=order.pk, refund=refund.stripe_refund_id)
    paid = Order.objects.filter(status__in=PAID).values_list("pk", flat=True)
    unpaid_receipts = OutgoingMessage.objects.filter(idempotency_key__startswith="receipt:order:").exclude(
        idempotency_key__in=[f"receipt:order:{pk}" for pk in paid]
    )
    for row in unpaid_receipts:
        findings.mismatch("mail", "a receipt for an order that is not paid", message=row.idempotency_key)
    for row in rows.values():
        if row.state != MessageState.SENT:
            findings.mismatch("mail", f"left {row.state}: {row.last_error[:100]}", message=row.idempotency_key)
        elif not received[row.message_id]:
            findings.mismatch("mail", "sent, never received by the mail server", message=row.idempotency_key)
    known = {row.message_id for row in rows.values()}
    for message_id in received.keys() - known:
        findings.mismatch("mail", "received, but no outbox row sent it", message_id=message_id)
    # A worker killed after the server took a message and before its row says so sends it again, with the same
    # Message-ID (mail clients show it once): at most one such message per kill of the mail worker.
    twice = sum(count - 1 for count in received.values() if count > 1)
    if twice > mail_worker_kills:
        findings.mismatch("mail", f"{twice} messages received more than once, {mail_worker_kills} mail worker kills")
    states = Counter(row.state for row in rows.values())
    findings.counts["mail"] = {
        **states,
        "received": len(mail),
        "receipts": sum(1 for key in rows if key.startswith("receipt:order:")),
        "refund_notices": sum(1 for key in rows if key.startswith("refund:order:")),
        "received_again_after_a_kill": twice,
    }


def _mirror(findings: Findings, client: stripe.StripeClient) -> None:
    """Every user, product and price mirrored once: one Stripe object each (a price: one live one; an old one is
    archived when its amount changes), holding what the local object holds, and no Stripe object of ours
    without its local one."""
    records = {record.app_ref: record for record in MirrorRecord.objects.all()}
    for record in records.values():
        if record.state != MirrorState.SYNCED or record.synced_version != record.version:
            findings.mismatch("mirror", f"{record.state}, version {record.synced_version}/{record.version}",
                              ref=record.app_ref, error=record.last_error[:100])  # fmt: skip
    for kind, resource in RESOURCES.items():
        spec = SPECS[kind]
        by_ref: dict[str, list] = defaultdict(list)
        for obj in _everything(getattr(client.v1, resource).list({"limit": 100})):
            if is_ours(obj.metadata) and not getattr(obj, "deleted", False):
                by_ref[obj.metadata[APP_REF_KEY]].append(obj)
        local = spec.model.objects.all()
        for instance in local.iterator():
            ref = f"{kind}:{instance.pk}"
            objs = by_ref.pop(ref, [])
            live = [obj for obj in objs if getattr(obj, "active", True)]
            current = live if kind == MirrorKind.PRICE else objs
            record = records.get(ref)
            if len(current) != (1 if kind != MirrorKind.PRICE or instance.active else 0):
                findings.mismatch("mirror", f"{len(current)} Stripe objects", ref=ref,
                                  stripe=",".join(obj.id for obj in current))  # fmt: skip
                continue
            held = current[0] if current else next((obj for obj in objs if record and obj.id == record.stripe_id), None)
            if held is None or record is None or record.stripe_id != held.id:
                findings.mismatch("mirror", "the mirror row names another Stripe object", ref=ref)
            elif not spec.matches(instance, held.to_dict()):
                findings.mismatch("mirror", f"Stripe holds {spec.held(held.to_dict())}", ref=ref)
        for ref in by_ref:
            findings.mismatch("mirror", "a Stripe object of ours without its local object", ref=ref)
        findings.counts["mirror"][resource] = local.count()


def _events(findings: Findings, client: stripe.StripeClient) -> None:
    """Every event Stripe sent stored once and processed (or ignored, for types we do not handle)."""
    sent = {event.id for event in _everything(client.v1.events.list({"limit": 100}))}
    stored = dict(WebhookEvent.objects.values_list("stripe_id", "state"))
    for event_id in sent - stored.keys():
        findings.mismatch("webhooks", "sent by Stripe, never stored", event=event_id)
    settled = {WebhookEventState.PROCESSED, WebhookEventState.IGNORED}
    for event_id, state in stored.items():
        if state not in settled:
            findings.mismatch("webhooks", f"left {state}", event=event_id)
    deliveries = sum(WebhookEvent.objects.values_list("deliveries", flat=True))
    findings.counts["webhooks"] = {
        "events": len(sent),
        "stored": len(stored),
        "deliveries": deliveries,
        "states": dict(Counter(stored.values())),
    }
