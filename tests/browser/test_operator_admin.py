"""An operator's day in the admin, in a real browser against a live server, a real worker and the emulator."""

import stripe
from django.db import transaction

from apps.catalog import services as catalog
from apps.mail.models import OutgoingMessage
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.orders.models import Order, OrderStatus
from apps.payments.webhooks.models import WebhookEvent, WebhookEventState
from tests.browser.admin_pages import AdminPages
from tests.browser.helpers import keep_for_readme
from tests.payments.helpers import PASSWORD, checkout_started, paid_by_checkout, settled, webhooks_quiet
from tests.worker_fixtures import wait_until

ORDERS = "/admin/payments/order/"


def _operator(browser, live_server, shop) -> AdminPages:
    pages = AdminPages(browser, live_server.url)
    pages.log_in(shop["staff"].email, PASSWORD)
    return pages


def _stripe(shop) -> stripe.StripeClient:
    emulator = shop["emulator"]
    return stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url})


def test_find_an_order_by_email_and_refund_part_of_it(browser, live_server, shop):
    order = paid_by_checkout(shop)
    admin = _operator(browser, live_server, shop)

    admin.search(ORDERS, "ada@example.com")
    assert "1 order" in admin.text(".paginator")
    admin.click_link(str(order.pk))
    admin.click("a.refundlink")
    assert f"{order.amount_total} can still be refunded" in admin.text("#content-main")
    amount = admin.find("#id_amount")
    amount.clear()
    amount.send_keys("1000")
    admin.submit("input[name=refund]")

    assert f"Refunded 1000 eur of order {order.pk}." in admin.messages()
    assert "Partially Refunded" in admin.text(".field-status")
    last_transition = admin.find_all("#transitions-group tbody tr.has_original")[-1].text
    assert "Paid" in last_transition
    assert "Partially Refunded" in last_transition
    refund = order.refunds.get()
    assert refund.amount == 1000
    assert refund.stripe_refund_id in admin.text("#refunds-group")
    keep_for_readme(browser, "order-admin", height=2000)
    assert [r.amount for r in _stripe(shop).v1.refunds.list().data] == [1000]


def test_a_refund_larger_than_what_remains_is_refused_on_the_page(browser, live_server, shop):
    order = paid_by_checkout(shop)
    admin = _operator(browser, live_server, shop)

    admin.open(f"{ORDERS}{order.pk}/refund/")
    amount = admin.find("#id_amount")
    amount.clear()
    amount.send_keys(str(order.amount_total + 1))
    # The browser itself refuses a number above the field's max; the server's check is tested without one.
    admin.browser.execute_script("document.getElementById('id_amount').removeAttribute('max')")
    admin.submit("input[name=refund]")

    assert f"less than or equal to {order.amount_total}" in admin.text(".errorlist")
    assert not order.refunds.exists()
    assert _stripe(shop).v1.refunds.list().data == []


def test_cancel_a_pending_order(browser, live_server, shop):
    _, started = checkout_started(shop)
    admin = _operator(browser, live_server, shop)

    answer = admin.run_action(ORDERS, "cancel", started["order"])

    assert "Done for 1 order(s)." in answer
    assert Order.objects.get(pk=started["order"]).status == OrderStatus.CANCELED
    assert _stripe(shop).v1.checkout.sessions.retrieve(started["session_id"]).status == "expired"


def test_find_a_failed_mirror_row_and_mirror_it_again(browser, live_server, shop):
    shop["emulator"].add_fault(
        status=400,
        count=1,
        method="POST",
        path_prefix="/v1/products",
        body_contains="name=Kettle",
        message="Try later.",
    )
    with transaction.atomic():
        kettle = catalog.product_create(name="Kettle")
    record = wait_until(
        lambda: MirrorRecord.objects.filter(
            kind=MirrorKind.PRODUCT, object_id=kettle.pk, state=MirrorState.FAILED
        ).first(),
        message="the refused product's row to fail",
    )
    admin = _operator(browser, live_server, shop)

    admin.open("/admin/payments/mirrorrecord/?state__exact=failed")
    assert "Try later." in admin.text("#result_list")
    answer = admin.run_action("/admin/payments/mirrorrecord/?state__exact=failed", "mirror_again", record.pk)

    assert "Queued 1 object(s) for mirroring." in answer
    synced = wait_until(lambda: MirrorRecord.objects.filter(pk=record.pk, state=MirrorState.SYNCED).first())
    assert _stripe(shop).v1.products.retrieve(synced.stripe_id).name == "Kettle"


def test_replay_a_parked_webhook_event(browser, live_server, shop):
    teapot = shop["teapot"].product
    stripe_id = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=teapot.pk).stripe_id
    _stripe(shop).v1.products.update(stripe_id, params={"description": "Edited in Stripe's dashboard"})
    webhooks_quiet(shop["emulator"])
    event = WebhookEvent.objects.get(type="product.updated")
    # As if its processing had failed for three days: parked, and the edit it carried not applied.
    WebhookEvent.objects.filter(pk=event.pk).update(state=WebhookEventState.FAILED, last_error="boom")
    teapot.refresh_from_db()
    catalog_description = teapot.description
    type(teapot).objects.filter(pk=teapot.pk).update(description="")
    admin = _operator(browser, live_server, shop)

    admin.open("/admin/payments/webhookevent/")
    assert "1 event(s) failed for three days and are parked" in admin.messages()
    answer = admin.run_action("/admin/payments/webhookevent/?state__exact=failed", "process_again", event.pk)

    assert "Queued 1 event(s) for processing." in answer
    wait_until(lambda: WebhookEvent.objects.filter(pk=event.pk, state=WebhookEventState.PROCESSED).exists())
    teapot.refresh_from_db()
    assert teapot.description == catalog_description == "Edited in Stripe's dashboard"
    admin.open("/admin/payments/webhookevent/")
    assert "parked" not in admin.messages()


def test_archive_a_product_and_see_it_archived_in_stripe(browser, live_server, shop):
    teapot = shop["teapot"].product
    admin = _operator(browser, live_server, shop)

    answer = admin.run_action("/admin/catalog/product/", "archive_selected", teapot.pk)

    assert "Archived 1 product(s)." in answer
    wait_until(settled, message="the archive in Stripe")
    stripe_id = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=teapot.pk).stripe_id
    assert _stripe(shop).v1.products.retrieve(stripe_id).active is False
    admin.open("/admin/catalog/product/?active__exact=0")
    assert "Teapot" in admin.text("#result_list")


def test_preview_the_receipt_a_customer_got(browser, live_server, shop):
    order = paid_by_checkout(shop)
    receipt = wait_until(lambda: OutgoingMessage.objects.filter(idempotency_key=f"receipt:order:{order.pk}").first())
    admin = _operator(browser, live_server, shop)

    admin.search("/admin/mail/outgoingmessage/", "ada@example.com")
    admin.click_link(receipt.subject)
    admin.browser.switch_to.frame(admin.find(".field-html_preview iframe"))
    try:
        preview = admin.text("body")
    finally:
        admin.browser.switch_to.default_content()

    assert "Teapot" in preview
    assert "Cup" in preview
