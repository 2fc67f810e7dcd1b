import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.catalog import services
from apps.catalog.models import Price
from apps.catalog.signals import price_changed, price_deleted, product_changed, product_deleted
from tests.catalog.factories import PriceFactory, ProductFactory
from tests.signal_recorder import SignalRecorder

pytestmark = pytest.mark.django_db


def test_product_create_signals_once_and_on_commit_work_runs_once_after_commit(django_capture_on_commit_callbacks):
    with SignalRecorder(product_changed) as recorder, django_capture_on_commit_callbacks(execute=False) as callbacks:
        product = services.product_create(name="Tea")
        # Inside the transaction the receiver has run, its on_commit work has not.
        assert len(recorder.calls) == 1
        assert recorder.committed == []

    for callback in callbacks:
        callback()
    assert recorder.calls[0]["product_id"] == product.pk
    assert recorder.calls[0]["created"] is True
    assert len(recorder.committed) == 1


def test_rolled_back_write_runs_no_on_commit_work(django_capture_on_commit_callbacks):
    product = ProductFactory()

    def create_then_fail() -> None:
        with transaction.atomic():
            services.price_create(product=product, unit_amount=100, currency="usd")
            raise RuntimeError("the caller's transaction fails")

    with (
        SignalRecorder(price_changed) as recorder,
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
    ):
        create_then_fail()

    assert len(recorder.calls) == 1
    assert recorder.committed == []
    assert not Price.objects.exists()


def test_update_signals_only_changed_fields_and_nothing_when_unchanged():
    product = ProductFactory(name="Tea", description="")

    with SignalRecorder(product_changed) as recorder:
        services.product_update(product=product, data={"name": "Tea", "description": "Loose"})
        services.product_update(product=product, data={"name": "Tea"})

    assert recorder.calls == [{"product_id": product.pk, "created": False, "fields": ["description"]}]


def test_archiving_twice_signals_once():
    product = ProductFactory()
    price = PriceFactory(product=product)

    with SignalRecorder(product_deleted) as products, SignalRecorder(price_deleted) as prices:
        services.price_archive(price=price)
        services.price_archive(price=price)
        services.product_archive(product=product)
        services.product_archive(product=product)

    assert products.calls == [{"product_id": product.pk}]
    assert prices.calls == [{"price_id": price.pk, "product_id": product.pk}]


def test_price_update_signals_with_changed_fields():
    price = PriceFactory(unit_amount=100, currency="usd")

    with SignalRecorder(price_changed) as recorder:
        services.price_update(price=price, data={"unit_amount": 200, "currency": "USD"})

    assert recorder.calls == [
        {"price_id": price.pk, "product_id": price.product_id, "created": False, "fields": ["unit_amount"]}
    ]


def test_reactivating_a_price_of_an_archived_product_is_refused():
    price = PriceFactory(active=False, product=ProductFactory(active=False))

    with pytest.raises(ValidationError) as error:
        services.price_update(price=price, data={"active": True})

    assert "product" in error.value.message_dict
    price.refresh_from_db()
    assert price.active is False


def test_an_archived_price_of_an_archived_product_can_still_be_created():
    product = ProductFactory(active=False)

    price = services.price_create(product=product, unit_amount=100, currency="usd", active=False)

    assert price.active is False


def test_unknown_field_is_refused():
    with pytest.raises(ValidationError) as error:
        services.product_update(product=ProductFactory(), data={"id": 5})

    assert "id" in error.value.message_dict


# A price breaking each of the table's constraints, as a caller could send it.
CONSTRAINT_BREAKERS = {
    "catalog_price_unit_amount_range": {"unit_amount": 0},
    "catalog_price_currency_lowercase": {"currency": "e1r"},
    "catalog_price_recurring_interval_valid": {"recurring_interval": "fortnight"},
    "catalog_price_interval_count_recurring": {"recurring_interval_count": 3},
    "catalog_price_trial_recurring": {"trial_days": 7},
}


def test_every_constraint_of_a_price_is_refused_in_python_before_the_database_sees_it():
    """Prices are validated without Django's query per constraint: each constraint needs a rule of the fields
    or of `Price.clean` that refuses what it refuses, or a caller would meet an IntegrityError (a 500)."""
    product = ProductFactory()
    assert set(CONSTRAINT_BREAKERS) == {constraint.name for constraint in Price._meta.constraints}

    for name, breaker in CONSTRAINT_BREAKERS.items():
        constraint = next(constraint for constraint in Price._meta.constraints if constraint.name == name)
        fields = {"product": product, "unit_amount": 500, "currency": "eur", **breaker}
        with pytest.raises(ValidationError):  # the case does break this constraint
            constraint.validate(Price, Price(**{"recurring_interval_count": 1, **fields}))

        with pytest.raises(ValidationError):
            services.price_create(**fields)

    assert not Price.objects.exists()
