import pytest
import stripe


@pytest.fixture
def five_customers(stripe_client):
    # Lists are newest first, as Stripe's are.
    return [stripe_client.v1.customers.create(params={"email": f"c{n}@example.com"}).id for n in range(5)][::-1]


def test_limit_and_has_more(stripe_client, five_customers):
    page = stripe_client.v1.customers.list(params={"limit": 2})

    assert [c.id for c in page.data] == five_customers[:2]
    assert page.has_more is True
    assert page.url == "/v1/customers"


def test_starting_after_and_ending_before(stripe_client, five_customers):
    after = stripe_client.v1.customers.list(params={"limit": 2, "starting_after": five_customers[1]})
    last = stripe_client.v1.customers.list(params={"limit": 2, "starting_after": five_customers[3]})
    before = stripe_client.v1.customers.list(params={"limit": 2, "ending_before": five_customers[4]})

    assert [c.id for c in after.data] == five_customers[2:4]
    assert ([c.id for c in last.data], last.has_more) == ([five_customers[4]], False)
    assert ([c.id for c in before.data], before.has_more) == (five_customers[2:4], True)


def test_auto_paging_walks_everything(stripe_client, five_customers):
    seen = [c.id for c in stripe_client.v1.customers.list(params={"limit": 2}).auto_paging_iter()]

    assert seen == five_customers


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"starting_after": "cus_x", "ending_before": "cus_y"},
        {"starting_after": "cus_gone"},
    ],
)
def test_bad_pagination_is_400(stripe_client, five_customers, params):
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe_client.v1.customers.list(params=params)

    assert error.value.http_status == 400


def test_expand_a_field_and_a_field_of_each_list_item(stripe_client):
    product = stripe_client.v1.products.create(
        params={"name": "Tea", "default_price_data": {"currency": "usd", "unit_amount": 100}}
    )

    price = stripe_client.v1.prices.retrieve(product.default_price, params={"expand": ["product"]})
    listed = stripe_client.v1.prices.list(params={"expand": ["data.product"]})

    assert price.product.name == "Tea"
    assert listed.data[0].product.id == product.id


def test_expanding_something_that_cannot_be_is_400(stripe_client):
    product = stripe_client.v1.products.create(params={"name": "Tea"})

    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe_client.v1.products.retrieve(product.id, params={"expand": ["name"]})

    assert "cannot be expanded" in error.value.user_message
