import factory
from django.utils import timezone

from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.orders.models import Order, OrderRefund, OrderStatus, Payment, PaymentStatus
from tests.users.factories import UserFactory


class OrderFactory(factory.django.DjangoModelFactory):
    """A pending order of 5,000 minor units of euros; `paid=True` makes it one Stripe took exactly that for."""

    class Meta:
        model = Order

    class Params:
        paid = factory.Trait(
            status=OrderStatus.PAID,
            amount_charged=factory.SelfAttribute("amount_total"),
            currency_charged=factory.SelfAttribute("currency"),
            payment_intent_id=factory.Sequence(lambda n: f"pi_test_{n}"),
            paid_at=factory.LazyFunction(timezone.now),
        )

    user = factory.SubFactory(UserFactory)
    email = factory.SelfAttribute("user.email")
    currency = "eur"
    amount_total = 5000


class OrderRefundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderRefund

    order = factory.SubFactory(OrderFactory, paid=True)
    stripe_refund_id = factory.Sequence(lambda n: f"re_test_{n}")
    amount = 1000


class MirrorRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MirrorRecord

    kind = MirrorKind.PRODUCT
    object_id = factory.Sequence(lambda n: n + 1)
    state = MirrorState.PENDING


class PaymentFactory(factory.django.DjangoModelFactory):
    """The succeeded payment of a paid order, by a Visa card."""

    class Meta:
        model = Payment

    order = factory.SubFactory(OrderFactory, paid=True)
    payment_intent_id = factory.LazyAttribute(
        lambda payment: payment.order.payment_intent_id or f"pi_{payment.order.pk}"
    )
    status = PaymentStatus.SUCCEEDED
    stripe_status = "succeeded"
    amount = factory.SelfAttribute("order.amount_total")
    currency = factory.SelfAttribute("order.currency")
    card_brand = "visa"
    card_last4 = "4242"
