import pytest
import requests
import stripe


@pytest.fixture
def price(stripe_client):
    product = stripe_client.v1.products.create(
        params={"name": "Teapot", "default_price_data": {"currency": "eur", "unit_amount": 4500}}
    )
    return stripe_client.v1.prices.retrieve(product.default_price)


def _session(client, price, **params):
    return client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [{"price": price.id, "quantity": 2}],
            "success_url": "https://shop.example/ok?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://shop.example/cart",
            **params,
        }
    )


def _event_types(client) -> list[str]:
    return [event.type for event in client.v1.events.list(params={"limit": 100}).data][::-1]


class TestCreate:
    def test_session_from_line_items(self, stripe_client, price):
        customer = stripe_client.v1.customers.create(params={"email": "ada@example.com"})

        session = _session(
            stripe_client, price, customer=customer.id, client_reference_id="42", metadata={"order": "42"}
        )

        assert session.id.startswith("cs_test_")
        assert (session.status, session.payment_status, session.mode) == ("open", "unpaid", "payment")
        assert (session.amount_total, session.currency) == (9000, "eur")
        assert (session.customer, session.client_reference_id, session.metadata.order) == (customer.id, "42", "42")
        assert session.url.endswith(f"/c/pay/{session.id}")
        items = stripe_client.v1.checkout.sessions.line_items.list(session.id)
        assert [(i.description, i.quantity, i.amount_total, i.price.id) for i in items.data] == [
            ("Teapot", 2, 9000, price.id)
        ]

    def test_price_data_makes_a_price_for_this_session_alone(self, stripe_client, price):
        session = stripe_client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [
                    {"price_data": {"currency": "eur", "unit_amount": 4999, "product": price.product}, "quantity": 3}
                ],
                "success_url": "https://shop.example/ok",
            }
        )

        items = stripe_client.v1.checkout.sessions.line_items.list(session.id).data
        assert (session.amount_total, session.currency) == (14997, "eur")
        assert [(i.price.unit_amount, i.price.product, i.price.active, i.quantity) for i in items] == [
            (4999, price.product, False, 3)
        ]
        assert _event_types(stripe_client).count("price.created") == 1  # the catalog's price only

    def test_price_data_needs_a_product_and_excludes_price(self, stripe_client, price):
        base = {"mode": "payment", "success_url": "https://shop.example/ok"}
        with pytest.raises(stripe.InvalidRequestError) as no_product:
            stripe_client.v1.checkout.sessions.create(
                params={**base, "line_items": [{"price_data": {"currency": "eur", "unit_amount": 1}, "quantity": 1}]}
            )
        with pytest.raises(stripe.InvalidRequestError) as both:
            stripe_client.v1.checkout.sessions.create(
                params={
                    **base,
                    "line_items": [
                        {
                            "price": price.id,
                            "price_data": {"currency": "eur", "unit_amount": 1, "product": price.product},
                            "quantity": 1,
                        }
                    ],
                }
            )

        assert no_product.value.param == "line_items[0][price_data][product]"
        assert both.value.param == "line_items[0][price]"

    def test_line_items_expand_on_the_session(self, stripe_client, price):
        session = _session(stripe_client, price)

        fetched = stripe_client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items"]})

        assert fetched.line_items.data[0].quantity == 2

    def test_list_by_status(self, stripe_client, price):
        open_session = _session(stripe_client, price)
        expired = _session(stripe_client, price)
        stripe_client.v1.checkout.sessions.expire(expired.id)

        listed = stripe_client.v1.checkout.sessions.list(params={"status": "open"})

        assert [s.id for s in listed.data] == [open_session.id]


class TestBadSessions:
    @pytest.mark.parametrize(
        ("change", "param"),
        [
            ({"line_items": [{"price": "price_nope", "quantity": 1}]}, "line_items[0][price]"),
            ({"line_items": [{"price": "{price}", "quantity": 0}]}, "line_items[0][quantity]"),
            ({"line_items": []}, "line_items"),
            ({"success_url": "not a url"}, "success_url"),
            ({"cancel_url": "ftp://shop.example"}, "cancel_url"),
            ({"mode": "setup"}, "mode"),
            ({"mode": "subscription"}, "line_items"),  # a one-time price cannot start a subscription
            ({"customer": "cus_nope"}, "customer"),
            ({"expires_at": 1}, "expires_at"),
        ],
    )
    def test_refused_with_the_param_named(self, stripe_client, price, change, param):
        if "line_items" in change:
            change = {
                "line_items": [
                    {**item, "price": item["price"].replace("{price}", price.id)} for item in change["line_items"]
                ]
            }

        with pytest.raises(stripe.InvalidRequestError) as error:
            _session(stripe_client, price, **change)

        assert param in (error.value.param or "")
        assert stripe_client.v1.checkout.sessions.list().data == []

    def test_inactive_price(self, stripe_client, price):
        stripe_client.v1.prices.update(price.id, params={"active": False})

        with pytest.raises(stripe.InvalidRequestError) as error:
            _session(stripe_client, price)

        assert "inactive" in error.value.user_message

    def test_recurring_price_in_payment_mode(self, stripe_client, price):
        monthly = stripe_client.v1.prices.create(
            params={"product": price.product, "currency": "eur", "unit_amount": 100, "recurring": {"interval": "month"}}
        )

        with pytest.raises(stripe.InvalidRequestError) as error:
            stripe_client.v1.checkout.sessions.create(
                params={
                    "mode": "payment",
                    "line_items": [{"price": monthly.id, "quantity": 1}],
                    "success_url": "https://x.example/",
                }
            )

        assert "recurring price" in error.value.user_message

    def test_mixed_currencies(self, stripe_client, price):
        dollars = stripe_client.v1.prices.create(
            params={"product": price.product, "currency": "usd", "unit_amount": 100}
        )

        with pytest.raises(stripe.InvalidRequestError) as error:
            stripe_client.v1.checkout.sessions.create(
                params={
                    "mode": "payment",
                    "line_items": [{"price": price.id, "quantity": 1}, {"price": dollars.id, "quantity": 1}],
                    "success_url": "https://x.example/",
                }
            )

        assert "same currency" in error.value.user_message

    def test_more_than_100_line_items(self, stripe_client, price):
        with pytest.raises(stripe.InvalidRequestError) as error:
            _session(stripe_client, price, line_items=[{"price": price.id, "quantity": 1}] * 101)

        assert error.value.param == "line_items"


class TestPaying:
    def test_paid(self, emulator, stripe_client, price):
        session = _session(stripe_client, price, metadata={"order": "7"})

        emulator.complete_checkout(session.id, "paid", email="buyer@example.com")

        paid = stripe_client.v1.checkout.sessions.retrieve(
            session.id, params={"expand": ["payment_intent.latest_charge"]}
        )
        assert (paid.status, paid.payment_status) == ("complete", "paid")
        assert paid.customer_details.email == "buyer@example.com"
        assert (paid.payment_intent.status, paid.payment_intent.amount) == ("succeeded", 9000)
        assert (paid.payment_intent.latest_charge.paid, paid.payment_intent.latest_charge.amount) == (True, 9000)
        assert _event_types(stripe_client)[-4:] == [
            "payment_intent.created",
            "charge.succeeded",
            "payment_intent.succeeded",
            "checkout.session.completed",
        ]
        completed = stripe_client.v1.events.list(params={"type": "checkout.session.completed"}).data[0]
        assert completed.data.object.metadata.order == "7"
        assert completed.data.previous_attributes.status == "open"

    def test_declined_then_paid(self, emulator, stripe_client, price):
        session = _session(stripe_client, price)

        emulator.complete_checkout(session.id, "declined")
        still_open = stripe_client.v1.checkout.sessions.retrieve(session.id)
        emulator.complete_checkout(session.id, "paid")

        assert still_open.status == "open"
        assert "payment_intent.payment_failed" in _event_types(stripe_client)
        intent = stripe_client.v1.payment_intents.retrieve(still_open.payment_intent)
        assert intent.status == "succeeded"  # the same intent, paid on the second try
        assert len(stripe_client.v1.charges.list(params={"payment_intent": intent.id}).data) == 2

    def test_delayed_payment_completes_unpaid_then_settles(self, emulator, stripe_client, price):
        session = _session(stripe_client, price)

        emulator.complete_checkout(session.id, "delayed")
        pending = stripe_client.v1.checkout.sessions.retrieve(session.id)
        emulator.control("POST", f"checkout/sessions/{session.id}/settle", {"outcome": "succeeded"})
        settled = stripe_client.v1.checkout.sessions.retrieve(session.id)

        assert (pending.status, pending.payment_status) == ("complete", "unpaid")
        assert settled.payment_status == "paid"
        assert _event_types(stripe_client)[-1] == "checkout.session.async_payment_succeeded"

    def test_delayed_payment_that_fails(self, emulator, stripe_client, price):
        session = _session(stripe_client, price)

        emulator.complete_checkout(session.id, "delayed")
        emulator.control("POST", f"checkout/sessions/{session.id}/settle", {"outcome": "failed"})

        assert _event_types(stripe_client)[-1] == "checkout.session.async_payment_failed"
        assert stripe_client.v1.checkout.sessions.retrieve(session.id).payment_status == "unpaid"

    def test_expire(self, stripe_client, price):
        session = _session(stripe_client, price)

        expired = stripe_client.v1.checkout.sessions.expire(session.id)
        with pytest.raises(stripe.InvalidRequestError) as again:
            stripe_client.v1.checkout.sessions.expire(session.id)

        assert expired.status == "expired"
        assert "can be expired" in again.value.user_message
        assert _event_types(stripe_client)[-1] == "checkout.session.expired"

    def test_a_completed_session_cannot_be_paid_or_expired_again(self, emulator, stripe_client, price):
        session = _session(stripe_client, price)
        emulator.complete_checkout(session.id)

        again = emulator.http.post(
            f"{emulator.url}/_emulator/checkout/sessions/{session.id}/complete", json={"outcome": "paid"}
        )

        assert again.status_code == 400
        with pytest.raises(stripe.InvalidRequestError):
            stripe_client.v1.checkout.sessions.expire(session.id)


class TestHostedPage:
    def test_page_shows_lines_and_total(self, stripe_client, price):
        session = _session(stripe_client, price)

        page = requests.get(session.url, timeout=5)

        assert page.status_code == 200
        assert "Teapot" in page.text
        assert "90.00 EUR" in page.text

    def test_pay_redirects_to_success_url_with_the_session_id(self, stripe_client, price):
        session = _session(stripe_client, price)

        response = requests.post(session.url, data={"outcome": "paid"}, allow_redirects=False, timeout=5)

        assert response.status_code == 303
        assert response.headers["Location"] == f"https://shop.example/ok?session={session.id}"
        assert stripe_client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
        assert requests.get(session.url, timeout=5).status_code == 410

    def test_decline_redirects_to_cancel_url(self, stripe_client, price):
        session = _session(stripe_client, price)

        response = requests.post(session.url, data={"outcome": "declined"}, allow_redirects=False, timeout=5)

        assert response.headers["Location"] == "https://shop.example/cart"
        assert stripe_client.v1.checkout.sessions.retrieve(session.id).status == "open"


class TestPaymentLinks:
    def test_create_update_list_and_line_items(self, stripe_client, price):
        link = stripe_client.v1.payment_links.create(
            params={"line_items": [{"price": price.id, "quantity": 1}], "metadata": {"campaign": "spring"}}
        )
        off = stripe_client.v1.payment_links.update(link.id, params={"active": False})

        assert link.id.startswith("plink_")
        assert link.url.startswith("http://127.0.0.1")
        assert stripe_client.v1.payment_links.retrieve(link.id).metadata.campaign == "spring"
        assert off.active is False
        assert [found.id for found in stripe_client.v1.payment_links.list(params={"active": False}).data] == [link.id]
        assert stripe_client.v1.payment_links.line_items.list(link.id).data[0].price.id == price.id

    def test_each_visit_opens_a_session_of_its_own_carrying_the_links_metadata(self, emulator, stripe_client, price):
        link = stripe_client.v1.payment_links.create(
            params={"line_items": [{"price": price.id, "quantity": 1}], "metadata": {"campaign": "spring"}}
        )

        first = requests.get(link.url, allow_redirects=False, timeout=5)
        second = requests.get(link.url, allow_redirects=False, timeout=5)

        sessions = stripe_client.v1.checkout.sessions.list(params={"payment_link": link.id}).data
        assert first.status_code == second.status_code == 303
        assert first.headers["Location"] != second.headers["Location"]
        assert len(sessions) == 2
        assert all(s.metadata.campaign == "spring" and s.amount_total == 4500 for s in sessions)
        emulator.complete_checkout(sessions[0].id, email="guest@example.com")
        assert stripe_client.v1.checkout.sessions.retrieve(sessions[0].id).customer_details.email == "guest@example.com"

    def test_the_payer_chooses_client_reference_id_and_prefilled_email_in_the_url(self, stripe_client, price):
        link = stripe_client.v1.payment_links.create(params={"line_items": [{"price": price.id, "quantity": 1}]})

        opened = requests.get(
            f"{link.url}?client_reference_id=order_42&prefilled_email=eve@example.com", allow_redirects=False, timeout=5
        )
        invalid = requests.get(f"{link.url}?client_reference_id=no%20spaces!", allow_redirects=False, timeout=5)

        sessions = {s.url: s for s in stripe_client.v1.checkout.sessions.list(params={"payment_link": link.id}).data}
        chosen, dropped = sessions[opened.headers["Location"]], sessions[invalid.headers["Location"]]
        assert (chosen.client_reference_id, chosen.customer_email) == ("order_42", "eve@example.com")
        assert (dropped.client_reference_id, dropped.customer_email) == (None, None)

    def test_the_control_api_opens_a_link_with_url_parameters(self, emulator, stripe_client, price):
        link = stripe_client.v1.payment_links.create(params={"line_items": [{"price": price.id, "quantity": 1}]})

        session = emulator.control(
            "POST", f"payment_links/{link.id}/sessions", {"client_reference_id": "7", "prefilled_email": "a@b.co"}
        )

        assert (session["client_reference_id"], session["customer_email"]) == ("7", "a@b.co")

    def test_an_inactive_link_opens_nothing(self, stripe_client, price):
        link = stripe_client.v1.payment_links.create(params={"line_items": [{"price": price.id, "quantity": 1}]})
        stripe_client.v1.payment_links.update(link.id, params={"active": False})

        assert requests.get(link.url, allow_redirects=False, timeout=5).status_code == 410
