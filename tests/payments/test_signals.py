"""The signals payments sends about orders (apps/payments/signals.py) as receivers get them: each with exactly
the arguments its documentation names, a refund's with that refund's own amount in minor units; sent inside the
transition's transaction after the order is saved, so a receiver reads the order as it now is and what it records
stands or falls with the transition.

Here through `order_transition`, the one function that sends them. Which moves send which signal, once, is in
tests/payments/orders/test_lifecycle.py; the subscription signals, with the news they carry, in
tests/payments/billing/test_store.py and tests/payments/billing/test_events.py; mail's receivers in
tests/mail/test_receivers.py.
"""

import ast
import inspect
import re
from contextlib import ExitStack

import pytest
from django.db import transaction
from django.dispatch import Signal

from apps.payments import signals
from apps.payments.orders.lifecycle import SIGNALS, order_transition
from apps.payments.orders.models import Order, OrderStatus, OrderTransition
from tests.payments.factories import OrderFactory, OrderRefundFactory
from tests.signal_recorder import SignalRecorder

pytestmark = pytest.mark.django_db


def documented_arguments(module) -> dict[str, set[str]]:
    """{signal name: the `names` its docstring lists after "Arguments:"} for each signal documented so."""
    tree = ast.parse(inspect.getsource(module))
    documented = {}
    for statement, following in zip(tree.body, tree.body[1:], strict=False):
        if (
            isinstance(statement, ast.Assign)
            and isinstance(following, ast.Expr)
            and "Arguments:" in following.value.value
        ):
            arguments = following.value.value.partition("Arguments:")[2]
            documented[statement.targets[0].id] = set(
                re.findall(r"`([a-z_]+)`", arguments)
            )  # `OrderRefund` is a model, not one
    return documented


def _declared() -> dict[str, Signal]:
    return {name: value for name, value in vars(signals).items() if isinstance(value, Signal)}


def test_every_signal_is_documented_with_its_arguments_or_as_one_of_the_subscriptions():
    declared = _declared()
    by_order = {name for name, signal in declared.items() if signal in SIGNALS.values()}

    assert set(documented_arguments(signals)) == by_order
    assert {name for name in declared if name not in by_order} == {
        name for name in declared if name.startswith("subscription_")
    }


def test_every_order_signal_is_sent_with_exactly_the_arguments_its_documentation_names():
    documented = documented_arguments(signals)
    paid, failed, expired, canceled = OrderFactory(), OrderFactory(), OrderFactory(), OrderFactory()

    with ExitStack() as stack:
        recorders = {name: stack.enter_context(SignalRecorder(getattr(signals, name))) for name in documented}
        order_transition(order_id=paid.pk, to=OrderStatus.PAID, cause="test")
        refund = OrderRefundFactory(order=paid, amount=1000)
        order_transition(order_id=paid.pk, to=OrderStatus.PARTIALLY_REFUNDED, cause="test", refund=refund)
        order_transition(order_id=failed.pk, to=OrderStatus.FAILED, cause="test")
        order_transition(order_id=expired.pk, to=OrderStatus.EXPIRED, cause="test")
        order_transition(order_id=canceled.pk, to=OrderStatus.CANCELED, cause="test")

    sent = {name: set(recorder.calls[0]) for name, recorder in recorders.items()}
    assert sent == documented


def test_each_refund_is_announced_with_its_own_amount_not_the_total_refunded():
    order = OrderFactory(paid=True, amount_total=5000)
    first, second = OrderRefundFactory(order=order, amount=1000), OrderRefundFactory(order=order, amount=4000)

    with SignalRecorder(signals.order_refunded) as refunded:
        order_transition(order_id=order.pk, to=OrderStatus.PARTIALLY_REFUNDED, cause="test", refund=first)
        order_transition(order_id=order.pk, to=OrderStatus.REFUNDED, cause="test", refund=second)

    assert refunded.calls == [
        {"order_id": order.pk, "amount": 1000, "refund_id": first.pk},
        {"order_id": order.pk, "amount": 4000, "refund_id": second.pk},
    ]


def test_a_receiver_reads_the_order_as_the_transition_left_it():
    order = OrderFactory(amount_total=5000)
    seen = []

    def read_back(sender, order_id, **kwargs):
        now = Order.objects.get(pk=order_id)
        seen.append((now.status, now.amount_charged, now.paid_at is not None))

    signals.order_paid.connect(read_back, dispatch_uid="test.read_back")
    try:
        order_transition(order_id=order.pk, to=OrderStatus.PAID, cause="test")
    finally:
        signals.order_paid.disconnect(dispatch_uid="test.read_back")

    assert seen == [(OrderStatus.PAID, 5000, True)]


def test_what_a_receiver_leaves_for_after_the_commit_is_dropped_with_a_transition_rolled_back(
    django_capture_on_commit_callbacks,
):
    order = OrderFactory()

    def paid_then_rolled_back() -> None:
        with transaction.atomic():
            order_transition(order_id=order.pk, to=OrderStatus.PAID, cause="test")
            raise RuntimeError("the event's handler failed after paying the order")

    with (
        django_capture_on_commit_callbacks(execute=True),
        SignalRecorder(signals.order_paid) as paid,
        pytest.raises(RuntimeError),
    ):
        paid_then_rolled_back()

    assert (len(paid.calls), paid.committed) == (1, [])
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


def test_a_receiver_that_fails_undoes_the_transition_for_the_event_to_be_retried():
    order = OrderFactory()

    def receipt_not_recorded(sender, order_id, **kwargs):
        raise RuntimeError("the receipt could not be recorded")

    signals.order_paid.connect(receipt_not_recorded, dispatch_uid="test.receipt_not_recorded")
    try:
        with pytest.raises(RuntimeError, match="receipt"):
            order_transition(order_id=order.pk, to=OrderStatus.PAID, cause="test")
    finally:
        signals.order_paid.disconnect(dispatch_uid="test.receipt_not_recorded")

    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING
    assert not OrderTransition.objects.filter(order=order).exists()
