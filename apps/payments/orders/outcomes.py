"""What applying Stripe's word to an order came to (a session, an intent, a charge, a refund)."""

from enum import unique

from config.outcomes import OutcomeKind


@unique
class OrderOutcome(OutcomeKind):
    PAID = "order {order} paid"
    IN_REVIEW = (
        "order {order} in review: Stripe took {charged} {charged_currency} for an order of {total} {currency} "
        "that was {status}"
    )
    FAILED = "order {order} failed"
    EXPIRED = "order {order} expired"
    UNCHANGED = "order {order} unchanged ({status})"
    AWAITS_DELAYED_PAYMENT = "order {order} awaits its delayed payment"
    SESSION_STILL_OPEN = "order {order} unchanged (session still open)"
    # An app's intent moved its order (failed, canceled), or left it as it was.
    MOVED_BY_INTENT = "order {order} {status}; payment {payment_status}"
    UNCHANGED_BY_INTENT = "order {order} unchanged; payment {payment_status} ({intent_status})"
    CARD_NOTED = "payment {payment_intent}: {card}"
    REFUNDS_RECORDED = "order {order}: {count} refund(s) recorded"
    REFUND_RECORDED = "order {order}: refund recorded"
    REFUND_KNOWN = "order {order}: refund known already"
    # Nothing of ours: a session, intent or charge of another system (or of a link made elsewhere).
    NO_ORDER_FOR_SESSION = "ignored: no order of ours for this session"
    NO_ORDER_FOR_PAYMENT = "ignored: no order of ours for this payment"
    NO_PAYMENT_FOR_CHARGE = "ignored: no payment of ours for this charge"
    NO_ORDER_FOR_CHARGE = "ignored: no order of ours for this charge"
    NO_ORDER_FOR_REFUND = "ignored: no order of ours for this refund"
    REFUND_NOT_MADE = "ignored: refund {status}"
