"""The admin's lists of subscriptions and invoices, filtered by status and by the plan they sell."""

from djstripe.models import Invoice, Subscription

from apps.payments.mirror.models import MirrorKind, MirrorRecord
from tests.helpers import client_for
from tests.payments.helpers import checkout_cart, webhooks_quiet
from tests.users.factories import UserFactory


def shown(client, url: str) -> list[str]:
    page = client.get(url)
    assert page.status_code == 200
    return sorted(row.id for row in page.context["cl"].result_list)


def test_staff_filter_subscriptions_and_invoices_by_status_and_plan(plans, client):
    customer = client_for(plans["customer"])
    for price in (plans["pro"], plans["team"]):  # Pro is paid now; Team starts with a trial
        started = checkout_cart(customer, [{"price": price.pk, "quantity": 1}])
        plans["emulator"].complete_checkout(started.json()["session_id"])
    webhooks_quiet(plans["emulator"])
    product = dict(MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT).values_list("object_id", "stripe_id"))
    pro, team = (product[plans[key].product_id] for key in ("pro", "team"))
    pro_sub = Subscription.objects.get(items__price__product__id=pro)
    team_sub = Subscription.objects.get(items__price__product__id=team)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    assert shown(client, "/admin/djstripe/subscription/?status=trialing") == [team_sub.id]
    assert shown(client, f"/admin/djstripe/subscription/?product={pro}") == [pro_sub.id]
    assert shown(client, f"/admin/djstripe/subscription/?status=trialing&product={pro}") == []
    pro_invoices = sorted(Invoice.objects.filter(subscription=pro_sub).values_list("id", flat=True))
    team_invoices = sorted(Invoice.objects.filter(subscription=team_sub).values_list("id", flat=True))
    assert len(pro_invoices) == len(team_invoices) == 1
    assert shown(client, f"/admin/djstripe/invoice/?product={pro}") == pro_invoices
    assert shown(client, f"/admin/djstripe/invoice/?product={team}&status=paid") == team_invoices
    assert shown(client, "/admin/djstripe/invoice/?status=open") == []
