import pytest
import stripe


def test_create_retrieve_update_delete(stripe_client):
    created = stripe_client.v1.customers.create(
        params={"email": "ada@example.com", "name": "Ada", "metadata": {"app_ref": "users.user:1"}}
    )

    fetched = stripe_client.v1.customers.retrieve(created.id)
    updated = stripe_client.v1.customers.update(created.id, params={"name": "Ada L.", "metadata": {"tier": "gold"}})
    deleted = stripe_client.v1.customers.delete(created.id)

    assert created.id.startswith("cus_")
    assert (fetched.email, fetched.name) == ("ada@example.com", "Ada")
    assert updated.name == "Ada L."
    assert updated.metadata.to_dict() == {"app_ref": "users.user:1", "tier": "gold"}
    assert deleted.deleted is True
    # Stripe still answers for a deleted customer, with a stub that says so.
    assert stripe_client.v1.customers.retrieve(created.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe_client.v1.customers.update(created.id, params={"name": "Ghost"})
    assert error.value.code == "resource_missing"


def test_unknown_customer_is_404_resource_missing(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe_client.v1.customers.retrieve("cus_doesnotexist")

    assert error.value.http_status == 404
    assert error.value.code == "resource_missing"
    assert error.value.param == "id"
    assert error.value.user_message == "No such customer: 'cus_doesnotexist'"


def test_list_filters_by_email_and_skips_deleted(stripe_client):
    kept = stripe_client.v1.customers.create(params={"email": "same@example.com"})
    gone = stripe_client.v1.customers.create(params={"email": "same@example.com"})
    stripe_client.v1.customers.create(params={"email": "other@example.com"})
    stripe_client.v1.customers.delete(gone.id)

    found = stripe_client.v1.customers.list(params={"email": "same@example.com"})

    assert [c.id for c in found.data] == [kept.id]


def test_search_by_email_and_by_metadata(stripe_client):
    ada = stripe_client.v1.customers.create(
        params={"email": "ada@example.com", "metadata": {"app_ref": "users.user:1"}}
    )
    stripe_client.v1.customers.create(params={"email": "bob@example.com", "metadata": {"app_ref": "users.user:2"}})

    by_email = stripe_client.v1.customers.search(params={"query": "email:'ADA@example.com'"})
    by_ref = stripe_client.v1.customers.search(params={"query": "metadata['app_ref']:'users.user:1'"})
    either = stripe_client.v1.customers.search(
        params={"query": "metadata['app_ref']:'users.user:1' OR email:'bob@example.com'"}
    )
    both = stripe_client.v1.customers.search(
        params={"query": "metadata['app_ref']:'users.user:1' AND email:'bob@example.com'"}
    )

    assert [c.id for c in by_email.data] == [ada.id]
    assert [c.id for c in by_ref.data] == [ada.id]
    assert len(either.data) == 2
    assert both.data == []
    assert by_ref.object == "search_result"


def test_search_with_a_bad_query_is_400(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe_client.v1.customers.search(params={"query": "email = nonsense"})

    assert error.value.param == "query"


class TestMetadataRules:
    def test_empty_value_unsets_a_key_and_empty_metadata_clears_all(self, stripe_client):
        customer = stripe_client.v1.customers.create(params={"metadata": {"a": "1", "b": "2"}})

        unset = stripe_client.v1.customers.update(customer.id, params={"metadata": {"a": ""}})
        cleared = stripe_client.v1.customers.update(customer.id, params={"metadata": ""})

        assert unset.metadata.to_dict() == {"b": "2"}
        assert cleared.metadata.to_dict() == {}

    @pytest.mark.parametrize(
        ("metadata", "fragment"),
        [
            ({f"k{n}": "v" for n in range(51)}, "up to 50 metadata keys"),
            ({"k" * 41: "v"}, "up to 40 characters"),
            ({"k": "v" * 501}, "up to 500 characters"),
        ],
    )
    def test_limits(self, stripe_client, metadata, fragment):
        with pytest.raises(stripe.InvalidRequestError) as error:
            stripe_client.v1.customers.create(params={"metadata": metadata})

        assert fragment in error.value.user_message
        assert stripe_client.v1.customers.list().data == []


def test_invalid_email_is_refused(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe_client.v1.customers.create(params={"email": "not-an-email"})

    assert error.value.param == "email"


def test_account(stripe_client):
    account = stripe_client.v1.accounts.retrieve_current()

    assert account.id.startswith("acct_")
    assert account.object == "account"
