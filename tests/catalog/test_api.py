import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.catalog.models import Price, Product
from tests.catalog.factories import PriceFactory, ProductFactory

pytestmark = pytest.mark.django_db

PRODUCTS = "/api/v1/products"
PRICES = "/api/v1/prices"


def _ids(response) -> list[int]:
    return [item["id"] for item in response.json()["results"]]


class TestReading:
    def test_anyone_lists_active_products_with_their_active_prices(self, api_client):
        on_sale = ProductFactory(name="Mug")
        PriceFactory(product=on_sale, unit_amount=1200)
        PriceFactory(product=on_sale, unit_amount=900, active=False)
        ProductFactory(name="Old mug", active=False)

        body = api_client.get(PRODUCTS).json()

        assert body["count"] == 1
        assert set(body) == {"count", "next", "previous", "results"}
        [product] = body["results"]
        assert product["name"] == "Mug"
        assert [price["unit_amount"] for price in product["prices"]] == [1200]

    def test_archived_product_is_404_for_shoppers_but_visible_to_staff(self, api_client, staff_client):
        archived = ProductFactory(active=False)

        assert api_client.get(f"{PRODUCTS}/{archived.pk}").status_code == 404
        assert staff_client.get(f"{PRODUCTS}/{archived.pk}").json()["active"] is False
        assert _ids(staff_client.get(PRODUCTS, {"active": "false"})) == [archived.pk]

    def test_product_detail_embeds_active_prices_cheapest_first(self, api_client):
        product = ProductFactory()
        PriceFactory(product=product, unit_amount=3000)
        PriceFactory(product=product, unit_amount=1000, currency="eur")

        body = api_client.get(f"{PRODUCTS}/{product.pk}").json()

        assert [(p["unit_amount"], p["currency"]) for p in body["prices"]] == [(1000, "eur"), (3000, "usd")]

    def test_prices_of_archived_products_are_hidden_from_shoppers(self, api_client):
        visible = PriceFactory()
        PriceFactory(product=ProductFactory(active=False))
        PriceFactory(active=False)

        assert _ids(api_client.get(PRICES)) == [visible.pk]

    def test_pagination(self, api_client):
        ProductFactory.create_batch(5)

        first = api_client.get(PRODUCTS, {"page_size": 2}).json()
        last = api_client.get(PRODUCTS, {"page_size": 2, "page": 3}).json()

        assert first["count"] == 5
        assert len(first["results"]) == 2
        assert first["previous"] is None
        assert "page=2" in first["next"]
        assert len(last["results"]) == 1
        assert last["next"] is None

    def test_page_past_the_end_is_404(self, api_client):
        assert api_client.get(PRODUCTS, {"page": 9}).status_code == 404

    def test_search_and_ordering(self, api_client):
        ProductFactory(name="Blue teapot")
        ProductFactory(name="Green cup")
        ProductFactory(name="Amber teapot")

        found = api_client.get(PRODUCTS, {"search": "teapot", "ordering": "name"}).json()["results"]

        assert [p["name"] for p in found] == ["Amber teapot", "Blue teapot"]

    def test_price_filters(self, staff_client):
        mug = ProductFactory()
        monthly = PriceFactory(product=mug, recurring_interval="month")
        one_off = PriceFactory(product=mug, currency="eur")
        PriceFactory(unit_amount=500)

        assert set(_ids(staff_client.get(PRICES, {"product": mug.pk}))) == {monthly.pk, one_off.pk}
        assert _ids(staff_client.get(PRICES, {"product": mug.pk, "recurring": "false"})) == [one_off.pk]
        assert _ids(staff_client.get(PRICES, {"recurring_interval": "month"})) == [monthly.pk]
        assert _ids(staff_client.get(PRICES, {"currency": "EUR"})) == [one_off.pk]
        assert _ids(staff_client.get(PRICES, {"ordering": "unit_amount"}))[0] != monthly.pk

    def test_bad_filter_value_is_400(self, api_client):
        response = api_client.get(PRICES, {"product": "abc", "recurring_interval": "fortnight"})

        assert response.status_code == 400
        assert set(response.json()) == {"product", "recurring_interval"}

    @pytest.mark.parametrize("url", [PRODUCTS, PRICES])
    def test_queries_per_list_request_do_not_grow_with_page_size(self, api_client, url):
        for product in ProductFactory.create_batch(30):
            PriceFactory.create_batch(2, product=product)

        def queries_for(page_size: int) -> int:
            with CaptureQueriesContext(connection) as ctx:
                response = api_client.get(url, {"page_size": page_size})
            assert len(response.json()["results"]) == page_size
            return len(ctx.captured_queries)

        assert queries_for(2) == queries_for(30)


class TestPermissions:
    @pytest.mark.parametrize(("client_name", "status"), [("api_client", 401), ("user_client", 403)])
    def test_only_staff_write(self, request, client_name, status):
        client = request.getfixturevalue(client_name)
        product = ProductFactory()
        price = PriceFactory(product=product)

        attempts = [
            client.post(PRODUCTS, {"name": "X"}, format="json"),
            client.patch(f"{PRODUCTS}/{product.pk}", {"name": "X"}, format="json"),
            client.delete(f"{PRODUCTS}/{product.pk}"),
            client.post(PRICES, {"product": product.pk, "unit_amount": 1, "currency": "usd"}, format="json"),
            client.patch(f"{PRICES}/{price.pk}", {"unit_amount": 1}, format="json"),
            client.delete(f"{PRICES}/{price.pk}"),
        ]

        assert [a.status_code for a in attempts] == [status] * 6
        product.refresh_from_db()
        price.refresh_from_db()
        assert (product.name, product.active, price.unit_amount, price.active) != ("X", False, 1, False)
        assert Product.objects.count() == 1
        assert Price.objects.count() == 1


class TestStaffWrites:
    def test_create_update_and_archive_a_product(self, staff_client, api_client):
        created = staff_client.post(
            PRODUCTS, {"name": "Tea", "description": "Loose leaf", "metadata": {"sku": "T-1"}}, format="json"
        )
        product_id = created.json()["id"]
        updated = staff_client.patch(f"{PRODUCTS}/{product_id}/", {"name": "Green tea"}, format="json")
        archived = staff_client.delete(f"{PRODUCTS}/{product_id}")

        assert created.status_code == 201
        assert created.json()["prices"] == []
        assert updated.json()["name"] == "Green tea"
        assert archived.status_code == 204
        assert Product.objects.get(pk=product_id).active is False
        assert api_client.get(f"{PRODUCTS}/{product_id}").status_code == 404

    def test_create_a_price_and_see_it_embedded(self, staff_client, api_client):
        product = ProductFactory()

        created = staff_client.post(
            PRICES,
            {"product": product.pk, "unit_amount": 1999, "currency": "EUR", "recurring_interval": "month"},
            format="json",
        )

        assert created.status_code == 201
        assert created.json()["currency"] == "eur"
        assert api_client.get(f"{PRODUCTS}/{product.pk}").json()["prices"][0]["id"] == created.json()["id"]

    def test_a_quarterly_plan_with_a_trial(self, staff_client):
        body = {"unit_amount": 4000, "currency": "eur", "recurring_interval": "month", "recurring_interval_count": 3}

        created = staff_client.post(PRICES, {"product": ProductFactory().pk, **body, "trial_days": 14}, format="json")

        assert created.status_code == 201, created.content
        assert (created.json()["recurring_interval_count"], created.json()["trial_days"]) == (3, 14)
        assert str(Price.objects.get()).endswith("/3 months")

    def test_archive_a_price(self, staff_client):
        price = PriceFactory()

        assert staff_client.delete(f"{PRICES}/{price.pk}").status_code == 204
        price.refresh_from_db()
        assert price.active is False

    def test_change_a_price_amount(self, staff_client):
        price = PriceFactory(unit_amount=1000)

        response = staff_client.patch(f"{PRICES}/{price.pk}", {"unit_amount": 1500}, format="json")

        assert response.json()["unit_amount"] == 1500

    def test_a_price_cannot_move_to_another_product(self, staff_client):
        price = PriceFactory()
        other = ProductFactory()

        response = staff_client.patch(f"{PRICES}/{price.pk}", {"product": other.pk}, format="json")

        assert response.status_code == 400
        assert "product" in response.json()


class TestValidation:
    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"unit_amount": 0}, "unit_amount"),
            ({"unit_amount": -5}, "unit_amount"),
            ({"unit_amount": 100_000_000}, "unit_amount"),
            ({"unit_amount": 10.5}, "unit_amount"),
            ({"unit_amount": "ten"}, "unit_amount"),
            ({"unit_amount": None}, "unit_amount"),
            ({"currency": "xyz"}, "currency"),
            ({"currency": "dollars"}, "currency"),
            ({"currency": ""}, "currency"),
            ({"recurring_interval": "fortnight"}, "recurring_interval"),
            ({"product": 999_999}, "product"),
            ({"recurring_interval_count": 3}, "recurring_interval_count"),  # a one-off price has no interval
            ({"recurring_interval": "month", "recurring_interval_count": 37}, "recurring_interval_count"),
            ({"recurring_interval": "year", "recurring_interval_count": 4}, "recurring_interval_count"),
            ({"recurring_interval": "month", "recurring_interval_count": 0}, "recurring_interval_count"),
            ({"trial_days": 14}, "trial_days"),  # a one-off price has no trial
            ({"recurring_interval": "month", "trial_days": 731}, "trial_days"),
            ({"recurring_interval": "month", "trial_days": 0}, "trial_days"),
        ],
    )
    def test_bad_price_is_a_field_error_and_changes_nothing(self, staff_client, changes, field):
        product = ProductFactory()
        body = {"product": product.pk, "unit_amount": 1000, "currency": "usd", **changes}

        response = staff_client.post(PRICES, body, format="json")

        assert response.status_code == 400
        assert field in response.json()
        assert not Price.objects.exists()

    def test_a_three_decimal_currency_stripe_does_not_charge_in_is_refused_clearly(self, staff_client):
        """KWD has three minor digits and is not on Stripe's list for charges: no price, so no cart, uses it."""
        response = staff_client.post(
            PRICES, {"product": ProductFactory().pk, "unit_amount": 1000, "currency": "kwd"}, format="json"
        )

        assert response.status_code == 400
        assert response.json()["currency"] == ["kwd is not a currency Stripe supports (ISO 4217, lowercase, e.g. usd)."]

    def test_largest_amount_is_accepted(self, staff_client):
        product = ProductFactory()

        response = staff_client.post(
            PRICES, {"product": product.pk, "unit_amount": 99_999_999, "currency": "jpy"}, format="json"
        )

        assert response.status_code == 201

    def test_price_on_an_archived_product_is_refused(self, staff_client):
        product = ProductFactory(active=False)

        response = staff_client.post(
            PRICES, {"product": product.pk, "unit_amount": 1000, "currency": "usd"}, format="json"
        )

        assert response.status_code == 400
        assert response.json() == {"product": ["This product is archived; it cannot have active prices."]}
        assert not Price.objects.exists()

    def test_bad_update_changes_nothing(self, staff_client):
        price = PriceFactory(unit_amount=1000)

        response = staff_client.patch(f"{PRICES}/{price.pk}", {"unit_amount": -1, "currency": "usd"}, format="json")

        assert response.status_code == 400
        price.refresh_from_db()
        assert price.unit_amount == 1000

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({}, "name"),
            ({"name": ""}, "name"),
            ({"name": "x" * 251}, "name"),
            ({"name": "Tea", "metadata": ["not", "an", "object"]}, "metadata"),
            ({"name": "Tea", "metadata": {"app_ref": "catalog.product:1"}}, "metadata"),
            ({"name": "Tea", "metadata": {"k" * 41: "v"}}, "metadata"),
            ({"name": "Tea", "metadata": {"k": "v" * 501}}, "metadata"),
            ({"name": "Tea", "metadata": {"k": 5}}, "metadata"),
            ({"name": "Tea", "metadata": {f"k{n}": "v" for n in range(50)}}, "metadata"),
            ({"name": "Tea", "active": "perhaps"}, "active"),
        ],
    )
    def test_bad_product_is_a_field_error(self, staff_client, body, field):
        response = staff_client.post(PRODUCTS, body, format="json")

        assert response.status_code == 400
        assert field in response.json()
        assert not Product.objects.exists()
