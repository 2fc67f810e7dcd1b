"""The currency lists: codes as Stripe writes them, and no currency whose amounts the shop would misread."""

import re

from apps.catalog.currencies import STRIPE_CURRENCIES, ZERO_DECIMAL_CURRENCIES


def test_every_code_is_three_lowercase_letters_as_stripe_writes_it():
    for codes in (STRIPE_CURRENCIES, ZERO_DECIMAL_CURRENCIES):
        assert [code for code in codes if not re.fullmatch(r"[a-z]{3}", code)] == []


def test_every_zero_decimal_currency_is_one_a_price_may_use():
    assert ZERO_DECIMAL_CURRENCIES <= STRIPE_CURRENCIES


def test_no_three_decimal_currency_is_offered():
    # Stripe counts these in thousandths; every amount here is written as whole units or hundredths.
    assert {"bhd", "jod", "kwd", "omr", "tnd"}.isdisjoint(STRIPE_CURRENCIES)
