import pytest
import stripe


def _product(client, **params):
    return client.v1.products.create(params={"name": "Tea", **params})


class TestProducts:
    def test_create_with_default_price_data_makes_the_price_too(self, stripe_client):
        product = _product(
            stripe_client,
            description="Loose leaf",
            metadata={"app_ref": "catalog.product:1"},
            default_price_data={"currency": "eur", "unit_amount": 450},
        )

        price = stripe_client.v1.prices.retrieve(product.default_price)
        assert product.id.startswith("prod_")
        assert (product.active, product.description) == (True, "Loose leaf")
        assert (price.product, price.unit_amount, price.currency, price.type) == (product.id, 450, "eur", "one_time")

    def test_bad_default_price_data_names_the_nested_param(self, stripe_client):
        with pytest.raises(stripe.InvalidRequestError) as error:
            _product(stripe_client, default_price_data={"currency": "xyz", "unit_amount": 450})

        assert error.value.param == "default_price_data[currency]"
        assert stripe_client.v1.products.list().data == []

    def test_update_archive_and_updated_timestamp(self, stripe_client):
        product = _product(stripe_client)

        archived = stripe_client.v1.products.update(product.id, params={"active": False, "name": "Old tea"})

        assert (archived.active, archived.name) == (False, "Old tea")
        assert archived.updated >= product.updated

    def test_name_is_required(self, stripe_client):
        with pytest.raises(stripe.InvalidRequestError) as error:
            stripe_client.v1.products.create(params={"description": "nameless"})

        assert error.value.param == "name"

    def test_delete_only_without_prices(self, stripe_client):
        priced = _product(stripe_client, default_price_data={"currency": "usd", "unit_amount": 100})
        bare = _product(stripe_client)

        with pytest.raises(stripe.InvalidRequestError) as error:
            stripe_client.v1.products.delete(priced.id)
        deleted = stripe_client.v1.products.delete(bare.id)

        assert "has one or more user-created prices" in error.value.user_message
        assert deleted.deleted is True
        with pytest.raises(stripe.InvalidRequestError):
            stripe_client.v1.products.retrieve(bare.id)

    def test_default_price_must_belong_to_the_product(self, stripe_client):
        product = _product(stripe_client)
        other = _product(stripe_client, default_price_data={"currency": "usd", "unit_amount": 100})

        with pytest.raises(stripe.InvalidRequestError) as error:
            stripe_client.v1.products.update(product.id, params={"default_price": other.default_price})

        assert error.value.param == "default_price"

    def test_list_filters_and_features(self, stripe_client):
        active = _product(stripe_client)
        _product(stripe_client, active=False)

        assert [p.id for p in stripe_client.v1.products.list(params={"active": True}).data] == [active.id]
        assert stripe_client.v1.products.features.list(active.id).data == []

    def test_search_by_metadata(self, stripe_client):
        wanted = _product(stripe_client, metadata={"app_ref": "catalog.product:7"})
        _product(stripe_client, metadata={"app_ref": "catalog.product:8"})

        found = stripe_client.v1.products.search(params={"query": "metadata['app_ref']:'catalog.product:7'"})

        assert [p.id for p in found.data] == [wanted.id]


class TestPrices:
    def test_create_retrieve_and_list_filters(self, stripe_client):
        product = _product(stripe_client)
        monthly = stripe_client.v1.prices.create(
            params={"product": product.id, "currency": "usd", "unit_amount": 900, "recurring": {"interval": "month"}}
        )
        one_off = stripe_client.v1.prices.create(
            params={
                "product": product.id,
                "currency": "EUR",
                "unit_amount": 1500,
                "metadata": {"app_ref": "catalog.price:2"},
            }
        )

        assert monthly.recurring.interval == "month"
        assert monthly.type == "recurring"
        assert one_off.currency == "eur"
        assert [p.id for p in stripe_client.v1.prices.list(params={"type": "one_time"}).data] == [one_off.id]
        assert len(stripe_client.v1.prices.list(params={"product": product.id}).data) == 2
        assert [p.id for p in stripe_client.v1.prices.list(params={"currency": "usd"}).data] == [monthly.id]
        found = stripe_client.v1.prices.search(params={"query": "metadata['app_ref']:'catalog.price:2'"})
        assert [p.id for p in found.data] == [one_off.id]

    @pytest.mark.parametrize("field", ["unit_amount", "currency", "recurring"])
    def test_amount_currency_and_recurrence_never_change(self, stripe_client, field):
        product = _product(stripe_client, default_price_data={"currency": "usd", "unit_amount": 100})
        changes = {"unit_amount": 200, "currency": "eur", "recurring": {"interval": "year"}}

        with pytest.raises(stripe.InvalidRequestError) as error:
            stripe_client.v1.prices.update(product.default_price, params={field: changes[field]})

        assert error.value.param == field
        assert stripe_client.v1.prices.retrieve(product.default_price).unit_amount == 100

    def test_active_metadata_nickname_and_lookup_key_change(self, stripe_client):
        product = _product(stripe_client, default_price_data={"currency": "usd", "unit_amount": 100})

        price = stripe_client.v1.prices.update(
            product.default_price,
            params={"active": False, "metadata": {"k": "v"}, "nickname": "Old", "lookup_key": "tea-old"},
        )

        assert (price.active, price.nickname, price.lookup_key, price.metadata.k) == (False, "Old", "tea-old", "v")

    @pytest.mark.parametrize(
        ("params", "param"),
        [
            ({"currency": "xyz", "unit_amount": 100}, "currency"),
            ({"currency": "usd", "unit_amount": -1}, "unit_amount"),
            ({"currency": "usd", "unit_amount": 100_000_000}, "unit_amount"),
            ({"currency": "usd"}, "unit_amount"),
            ({"currency": "usd", "unit_amount": 100, "recurring": {"interval": "fortnight"}}, "interval"),
        ],
    )
    def test_bad_prices_are_refused(self, stripe_client, params, param):
        product = _product(stripe_client)

        with pytest.raises(stripe.InvalidRequestError) as error:
            stripe_client.v1.prices.create(params={"product": product.id, **params})

        assert error.value.http_status == 400
        assert param in error.value.param
        assert stripe_client.v1.prices.list().data == []

    def test_price_for_an_unknown_product(self, stripe_client):
        with pytest.raises(stripe.InvalidRequestError) as error:
            stripe_client.v1.prices.create(params={"product": "prod_nope", "currency": "usd", "unit_amount": 100})

        assert (error.value.http_status, error.value.code, error.value.param) == (400, "resource_missing", "product")


def test_a_large_catalog_is_seeded_at_once_without_events(emulator, stripe_client):
    seeded = emulator.control(
        "POST",
        "catalog/seed",
        {
            "count": 250,
            "skip": [7],
            "product": {"id": "prod_seed{n}", "name": "Seeded {n}", "metadata": {"app_ref": "catalog.product:{n}"}},
            "price": {"id": "price_seed{n}", "currency": "eur", "unit_amount": 1200, "active": True},
        },
    )

    products = list(stripe_client.v1.products.list(params={"limit": 100}).auto_paging_iter())
    assert seeded == {"made": 249}
    assert len(products) == 249
    assert "prod_seed7" not in {product.id for product in products}
    eighth = stripe_client.v1.products.retrieve("prod_seed8")
    assert (eighth.name, eighth.default_price) == ("Seeded 8", "price_seed8")
    assert eighth.metadata.app_ref == "catalog.product:8"
    price = stripe_client.v1.prices.retrieve("price_seed8")
    assert (price.unit_amount, price.currency, price.product, price.active) == (1200, "eur", "prod_seed8", True)
    assert stripe_client.v1.events.list(params={"limit": 1}).data == []
