"""The catalog's signals as receivers get them: with the arguments their documentation names, sent inside the
write's transaction after the write, so a receiver reads the row as written and its own work stands or falls
with the write. (`test_services.py` holds when each is sent and with which fields.)"""

import ast
import inspect
import re
from contextlib import ExitStack

import pytest
from django.dispatch import Signal

from apps.catalog import services, signals
from apps.catalog.models import Price, Product
from tests.signal_recorder import SignalRecorder

pytestmark = pytest.mark.django_db


def documented_arguments(module) -> dict[str, set[str]]:
    """{signal name: the `names` its docstring lists after "Arguments:"} for each signal the module declares."""
    tree = ast.parse(inspect.getsource(module))
    documented = {}
    for statement, following in zip(tree.body, tree.body[1:], strict=False):
        if isinstance(statement, ast.Assign) and isinstance(following, ast.Expr):
            arguments = following.value.value.partition("Arguments:")[2].split(".")[0]
            documented[statement.targets[0].id] = set(re.findall(r"`(\w+)`", arguments))
    return documented


def test_every_signal_is_sent_with_exactly_the_arguments_its_documentation_names():
    documented = documented_arguments(signals)
    declared = {name for name, value in vars(signals).items() if isinstance(value, Signal)}

    with ExitStack() as stack:
        recorders = {name: stack.enter_context(SignalRecorder(getattr(signals, name))) for name in declared}
        product = services.product_create(name="Tea")
        price = services.price_create(product=product, unit_amount=500, currency="eur")
        services.price_archive(price=price)
        services.product_archive(product=product)

    assert set(documented) == declared
    sent = {name: set(recorder.calls[0]) for name, recorder in recorders.items()}
    assert sent == documented


def test_a_receiver_reads_the_row_as_the_write_left_it():
    seen = []

    def read_back(sender, price_id=None, product_id=None, **kwargs):
        if price_id is not None:
            seen.append(("price", Price.objects.get(pk=price_id).unit_amount))
        else:
            seen.append(("product", Product.objects.get(pk=product_id).active))

    product = services.product_create(name="Tea")
    price = services.price_create(product=product, unit_amount=500, currency="eur")
    for signal in (signals.price_changed, signals.product_deleted):
        signal.connect(read_back, dispatch_uid="test.read_back")
    try:
        services.price_update(price=price, data={"unit_amount": 650})
        services.product_archive(product=product)  # archived, not deleted: the row is still there to read
    finally:
        for signal in (signals.price_changed, signals.product_deleted):
            signal.disconnect(dispatch_uid="test.read_back")

    assert seen == [("price", 650), ("product", False)]


def test_a_receiver_that_fails_undoes_the_write():
    def refuse(sender, **kwargs):
        raise RuntimeError("the receiver could not record its work")

    signals.product_changed.connect(refuse, dispatch_uid="test.refuse")
    try:
        with pytest.raises(RuntimeError):
            services.product_create(name="Tea")
    finally:
        signals.product_changed.disconnect(dispatch_uid="test.refuse")

    assert not Product.objects.filter(name="Tea").exists()
