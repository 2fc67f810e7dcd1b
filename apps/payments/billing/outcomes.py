"""What applying Stripe's word to a subscription, its invoice or its checkout came to."""

from enum import unique

from config.outcomes import OutcomeKind


@unique
class BillingOutcome(OutcomeKind):
    SUBSCRIPTION_STORED = "subscription {subscription} {status}"
    OTHER_INSTALLATION = "ignored: a subscription of another installation"
    NO_TRIAL_TO_END = "subscription {subscription}: no trial to end"
    TRIAL_ENDS_WITH_SUBSCRIPTION = "subscription {subscription}: trial ends with the subscription"
    TRIAL_ENDS = "subscription {subscription}: trial ends {trial_end}"
    RENEWS = "subscription {subscription} renews on {next_payment_attempt}"
    NOT_A_SUBSCRIPTION_INVOICE = "ignored: not the invoice of a subscription"
    INVOICE_OF_OTHER_INSTALLATION = "ignored: invoice {invoice} belongs to another installation"
    INVOICE_PAID = "invoice {invoice} paid"
    INVOICE_UNPAID = "invoice {invoice} unpaid after {attempts} attempt(s)"
    INVOICE_AWAITS_CUSTOMER = "invoice {invoice} for the customer to confirm after {attempts} attempt(s)"
    INVOICE_STORED = "invoice {invoice} {status}"
    NO_CHECKOUT_FOR_SESSION = "ignored: no subscription checkout of ours for this session"
    CHECKOUT_EXPIRED = "subscription checkout {checkout} expired"
    SESSION_STILL_OPEN = "unchanged (session still open)"
    STARTED_ELSEWHERE = "subscription {subscription} not ours"
