"""Checkout Sessions and their orders (apps/payments/orders/sessions.py): a session's state applied to the order
it was made for, a payment link's session made into an order of its own, and the customer's cancel and the
success page's sync, which ask Stripe.

Here each decision with Stripe-shaped sessions, and with Stripe played by an in-memory stand-in where the
module asks it (what is asked, and what a refusal, a race or no answer leaves behind). The whole path over
HTTP, with the emulator's checkout pages and its webhooks, is covered in tests/journeys/test_checkout.py and
tests/journeys/test_money_rules.py (links, foreign sessions, amounts Stripe took).
"""

import pytest

from apps.catalog.models import Price
from apps.payments.gateway.errors import StripeRefused, StripeUnavailable
from apps.payments.orders.errors import OrderActionRefused
from apps.payments.orders.models import Order, OrderRefund, OrderStatus, OrderTransition, Payment, PaymentLink
from apps.payments.orders.outcomes import OrderOutcome
from apps.payments.orders.sessions import apply_session, order_cancel, order_for_payment, order_sync
from apps.payments.signals import order_paid
from tests.catalog.factories import PriceFactory
from tests.payments.factories import MirrorRecordFactory, OrderFactory
from tests.payments.stripe_stand_in import refused, unreachable
from tests.signal_recorder import SignalRecorder
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db


def _session(session_id: str = "cs_test_1", **fields) -> dict:
    """A paid Checkout Session of 5,000 euro cents, as Stripe sends it (the fields the shop reads)."""
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": 5000,
        "currency": "eur",
        "payment_intent": "pi_1",
        "payment_link": None,
        "customer": None,
        "customer_email": None,
        "customer_details": {"email": "payer@example.com", "name": "Ada"},
        "client_reference_id": None,
        "metadata": {},
        **fields,
    }


def _pending(**fields) -> Order:
    return OrderFactory(checkout_session_id="cs_test_1", amount_total=5000, currency="eur", **fields)


class TestApplySession:
    def test_a_session_of_no_order_of_ours_is_ignored(self):
        outcome = apply_session(_session("cs_elsewhere"), cause="test")

        assert outcome.kind is OrderOutcome.NO_ORDER_FOR_SESSION
        assert not Order.objects.exists()

    def test_an_order_is_found_by_its_session_never_by_what_the_payer_can_type(self):
        order = _pending()
        naming_it = _session("cs_made_elsewhere", client_reference_id=str(order.pk), metadata={"order": str(order.pk)})

        outcome = apply_session(naming_it, cause="test")

        assert outcome.kind is OrderOutcome.NO_ORDER_FOR_SESSION
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING

    def test_a_paid_session_pays_its_order_and_records_its_payment(self):
        order = _pending()

        outcome = apply_session(_session(), cause="checkout.session.completed evt_1")

        order.refresh_from_db()
        assert outcome == OrderOutcome.PAID.of(order=order.pk)
        assert (order.status, order.amount_charged, order.payment_intent_id) == (OrderStatus.PAID, 5000, "pi_1")
        assert Payment.objects.get(order=order).status == "succeeded"
        assert order.transitions.get().cause == "checkout.session.completed evt_1"

    def test_a_guests_order_takes_the_email_typed_on_stripes_page(self):
        order = _pending(user=None, email="")

        apply_session(_session(), cause="test")

        assert Order.objects.get(pk=order.pk).email == "payer@example.com"

    def test_the_same_paid_session_told_twice_pays_once(self):
        order = _pending()

        with SignalRecorder(order_paid) as announced:
            first = apply_session(_session(), cause="event")
            second = apply_session(_session(), cause="the success page")

        assert (first.kind, second.kind) == (OrderOutcome.PAID, OrderOutcome.UNCHANGED)
        assert [call["order_id"] for call in announced.calls] == [order.pk]
        assert OrderTransition.objects.filter(order=order).count() == 1

    @pytest.mark.parametrize(
        ("amount", "currency"), [(4999, "eur"), (5001, "eur"), (5000, "usd")], ids=["less", "more", "currency"]
    )
    def test_a_session_that_took_another_amount_puts_the_order_in_review(self, amount, currency):
        order = _pending()

        outcome = apply_session(_session(amount_total=amount, currency=currency), cause="test")

        order.refresh_from_db()
        assert outcome.kind is OrderOutcome.IN_REVIEW
        assert (order.status, order.amount_charged, order.currency_charged) == (OrderStatus.REVIEW, amount, currency)

    def test_a_completed_session_whose_payment_is_delayed_leaves_the_order_pending(self):
        order = _pending()

        outcome = apply_session(_session(payment_status="unpaid"), cause="test")

        assert outcome == OrderOutcome.AWAITS_DELAYED_PAYMENT.of(order=order.pk)
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING
        assert Payment.objects.get(order=order).status == "processing"

    def test_an_open_session_changes_nothing(self):
        order = _pending()

        outcome = apply_session(_session(status="open", payment_status="unpaid", payment_intent=None), cause="test")

        assert outcome == OrderOutcome.SESSION_STILL_OPEN.of(order=order.pk)
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING
        assert not Payment.objects.exists()

    def test_an_expired_session_expires_its_order(self):
        order = _pending()

        outcome = apply_session(_session(status="expired", payment_status="unpaid", payment_intent=None), "test")

        assert outcome == OrderOutcome.EXPIRED.of(order=order.pk)
        assert Order.objects.get(pk=order.pk).status == OrderStatus.EXPIRED

    def test_a_late_expiry_never_downgrades_a_paid_order(self):
        order = _pending()
        apply_session(_session(), cause="paid")

        outcome = apply_session(_session(status="expired", payment_status="unpaid"), cause="a stale expiry")

        assert outcome == OrderOutcome.UNCHANGED.of(order=order.pk, status=OrderStatus.PAID)
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


class TestPaymentLinkSessions:
    @pytest.fixture
    def link(self):
        price = PriceFactory(unit_amount=1200, currency="eur", product__name="Cup")
        return PaymentLink.objects.create(
            stripe_id="plink_1",
            url="https://buy.stripe.com/test_1",
            currency="eur",
            lines=[{"price": price.pk, "quantity": 2}],
        )

    def _paid_through(self, link: PaymentLink, **fields) -> dict:
        return _session("cs_link_1", payment_link=link.stripe_id, amount_total=2400, **fields)

    def test_a_paid_session_of_our_link_becomes_a_paid_order_priced_from_the_catalog(self, link):
        outcome = apply_session(self._paid_through(link), cause="test")

        order = Order.objects.get(checkout_session_id="cs_link_1")
        assert outcome == OrderOutcome.PAID.of(order=order.pk)
        assert (order.status, order.amount_total, order.payment_link_id) == (OrderStatus.PAID, 2400, "plink_1")
        assert [(line.product_name, line.unit_amount, line.quantity) for line in order.lines.all()] == [
            ("Cup", 1200, 2)
        ]
        assert (order.user, order.email) == (None, "payer@example.com")  # a guest: a typed address proves nothing

    def test_two_events_about_one_link_session_make_one_order(self, link):
        apply_session(self._paid_through(link), cause="completed")
        apply_session(self._paid_through(link), cause="async_payment_succeeded")

        assert Order.objects.filter(checkout_session_id="cs_link_1").count() == 1

    def test_a_price_changed_since_the_link_was_made_puts_its_order_in_review(self, link):
        Price.objects.filter(pk=link.lines[0]["price"]).update(unit_amount=1500)

        outcome = apply_session(self._paid_through(link), cause="test")

        assert outcome.kind is OrderOutcome.IN_REVIEW
        order = Order.objects.get(checkout_session_id="cs_link_1")
        assert (order.status, order.amount_total, order.amount_charged) == (OrderStatus.REVIEW, 3000, 2400)

    def test_a_link_order_belongs_to_the_user_of_our_stripe_customer(self, link):
        ada = UserFactory()
        MirrorRecordFactory(kind="users.user", object_id=ada.pk, stripe_id="cus_ada")

        apply_session(self._paid_through(link, customer="cus_ada"), cause="test")

        assert Order.objects.get(checkout_session_id="cs_link_1").user == ada

    def test_a_link_order_belongs_to_a_user_only_once_they_proved_the_address(self, link):
        UserFactory(email="unproven@example.com", email_verified=False)
        proven = UserFactory(email="proven@example.com", email_verified=True)

        apply_session(self._paid_through(link, customer_details={"email": "unproven@example.com"}), cause="test")
        apply_session(
            _session(
                "cs_link_2", payment_link="plink_1", amount_total=2400, customer_details={"email": "Proven@Example.com"}
            ),
            cause="test",
        )

        assert Order.objects.get(checkout_session_id="cs_link_1").user is None
        assert Order.objects.get(checkout_session_id="cs_link_2").user == proven

    def test_a_link_session_not_completed_makes_no_order(self, link):
        apply_session(self._paid_through(link, status="expired", payment_status="unpaid"), cause="test")
        apply_session(self._paid_through(link, status="open", payment_status="unpaid"), cause="test")

        assert not Order.objects.exists()

    def test_a_session_of_a_link_made_elsewhere_makes_no_order(self):
        outcome = apply_session(_session("cs_link_1", payment_link="plink_not_ours"), cause="test")

        assert outcome.kind is OrderOutcome.NO_ORDER_FOR_SESSION
        assert not Order.objects.exists()


class TestOrderForPayment:
    def test_no_intent_names_no_order_and_asks_stripe_nothing(self, stripe_stand_in):
        assert order_for_payment(None) == (None, None)
        assert order_for_payment("") == (None, None)
        assert stripe_stand_in.calls == []

    def test_an_intent_stored_on_its_order_is_found_without_asking_stripe(self, stripe_stand_in):
        order = OrderFactory(paid=True)

        assert order_for_payment(order.payment_intent_id) == (order, None)
        assert stripe_stand_in.calls == []

    def test_stripe_says_which_of_our_sessions_an_unrecorded_intent_belongs_to(self, stripe_stand_in):
        order = _pending()
        stripe_stand_in.answer("checkout.sessions.list", [_session(payment_status="unpaid", status="open")])

        found, session = order_for_payment("pi_1")

        assert found == order
        assert session["id"] == "cs_test_1"
        assert stripe_stand_in.calls_to("checkout.sessions.list")[0].params == {"payment_intent": "pi_1", "limit": 1}

    def test_an_intent_of_no_session_is_no_order(self, stripe_stand_in):
        stripe_stand_in.answer("checkout.sessions.list", [])

        assert order_for_payment("pi_elsewhere") == (None, None)


class TestOrderCancel:
    def test_a_pending_order_is_canceled_and_its_session_expired_in_stripe(self, stripe_stand_in):
        order = _pending()
        stripe_stand_in.answer("checkout.sessions.expire", _session(status="expired", payment_status="unpaid"))

        order_cancel(order=order, by=order.user)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELED
        assert [call.args for call in stripe_stand_in.calls_to("checkout.sessions.expire")] == [("cs_test_1",)]

    def test_an_order_with_nothing_started_in_stripe_is_canceled_without_asking_it(self, stripe_stand_in):
        order = OrderFactory()

        order_cancel(order=order, by=order.user)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELED
        assert stripe_stand_in.calls == []

    def test_a_cancel_racing_the_payment_refunds_the_order_instead(self, stripe_stand_in):
        order = _pending()
        stripe_stand_in.answer("checkout.sessions.expire", refused("Only open sessions can be expired."))
        stripe_stand_in.answer("checkout.sessions.retrieve", _session())
        stripe_stand_in.answer(
            "refunds.create",
            lambda call: {"id": "re_1", "object": "refund", "amount": call.params["amount"], "status": "succeeded"},
        )

        canceled = order_cancel(order=order, by=order.user)

        assert (canceled.status, canceled.amount_refunded) == (OrderStatus.REFUNDED, 5000)
        assert stripe_stand_in.calls_to("refunds.create")[0].params["payment_intent"] == "pi_1"
        assert OrderRefund.objects.get(order=order).stripe_refund_id == "re_1"

    def test_a_cancel_finding_the_session_expired_meanwhile_expires_the_order(self, stripe_stand_in):
        order = _pending()
        stripe_stand_in.answer("checkout.sessions.expire", refused("Only open sessions can be expired."))
        stripe_stand_in.answer("checkout.sessions.retrieve", _session(status="expired", payment_status="unpaid"))

        assert order_cancel(order=order, by=order.user).status == OrderStatus.EXPIRED

    def test_a_session_stripe_will_not_expire_for_another_reason_leaves_the_order_as_it_was(self, stripe_stand_in):
        order = _pending()
        stripe_stand_in.answer("checkout.sessions.expire", refused("Something else is wrong."))
        stripe_stand_in.answer("checkout.sessions.retrieve", _session(status="open", payment_status="unpaid"))

        with pytest.raises(StripeRefused, match="Something else is wrong"):
            order_cancel(order=order, by=order.user)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING

    def test_stripe_out_of_reach_leaves_the_order_pending_for_a_retry(self, stripe_stand_in):
        order = _pending()
        stripe_stand_in.answer("checkout.sessions.expire", unreachable())

        with pytest.raises(StripeUnavailable):
            order_cancel(order=order, by=order.user)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING

    def test_an_apps_order_is_canceled_with_its_intent(self, stripe_stand_in):
        order = OrderFactory(payment_intent_id="pi_app")
        stripe_stand_in.answer(
            "payment_intents.cancel", {"id": "pi_app", "object": "payment_intent", "status": "canceled", "amount": 5000}
        )

        order_cancel(order=order, by=order.user)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELED
        cancel = stripe_stand_in.calls_to("payment_intents.cancel")[0]
        assert (cancel.args, cancel.params) == (("pi_app",), {"cancellation_reason": "requested_by_customer"})

    def test_the_owner_cancelling_a_paid_order_refunds_it_in_full(self, stripe_stand_in):
        order = OrderFactory(paid=True, amount_total=5000)
        stripe_stand_in.answer("refunds.create", {"id": "re_1", "object": "refund", "amount": 5000})

        canceled = order_cancel(order=order, by=order.user)

        assert (canceled.status, canceled.amount_refunded) == (OrderStatus.REFUNDED, 5000)

    def test_someone_elses_paid_order_is_not_theirs_to_refund(self, stripe_stand_in):
        order = OrderFactory(paid=True)

        with pytest.raises(OrderActionRefused, match="permission"):
            order_cancel(order=order, by=UserFactory())

        assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
        assert stripe_stand_in.calls == []

    @pytest.mark.parametrize("status", [OrderStatus.EXPIRED, OrderStatus.CANCELED, OrderStatus.REFUNDED])
    def test_a_cancel_sent_again_finds_the_order_as_it_left_it(self, stripe_stand_in, status):
        """A retry after a lost answer (the first cancel expired the session, or refunded) is not an error."""
        order = _pending(status=status)

        assert order_cancel(order=order, by=order.user).status == status
        assert Order.objects.get(pk=order.pk).status == status
        assert stripe_stand_in.calls == []


class TestOrderSync:
    def test_the_success_page_pays_the_order_without_waiting_for_the_webhook(self, stripe_stand_in):
        order = _pending()
        stripe_stand_in.answer("checkout.sessions.retrieve", _session())

        synced = order_sync(order=order, by=order.user)

        assert synced.status == OrderStatus.PAID
        assert [call.args for call in stripe_stand_in.calls] == [("cs_test_1",)]

    def test_an_apps_order_is_synced_from_its_intent(self, stripe_stand_in):
        order = OrderFactory(payment_intent_id="pi_app", amount_total=5000, currency="eur")
        stripe_stand_in.answer(
            "payment_intents.retrieve",
            {"id": "pi_app", "status": "succeeded", "amount": 5000, "amount_received": 5000, "currency": "eur"},
        )

        assert order_sync(order=order, by=order.user).status == OrderStatus.PAID

    @pytest.mark.parametrize("status", [OrderStatus.PAID, OrderStatus.EXPIRED, OrderStatus.REVIEW])
    def test_an_order_that_is_settled_here_asks_stripe_nothing(self, stripe_stand_in, status):
        order = _pending(status=status)

        assert order_sync(order=order, by=order.user).status == status
        assert stripe_stand_in.calls == []

    def test_stripe_refusing_the_read_is_an_answer_not_a_crash(self, stripe_stand_in):
        order = _pending()
        stripe_stand_in.answer("checkout.sessions.retrieve", refused("No such checkout.session"))

        with pytest.raises(StripeRefused):
            order_sync(order=order, by=order.user)

        assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING
