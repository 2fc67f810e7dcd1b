import pytest

from apps.mail.money import money_format


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1999, "usd", "$19.99"),
        (5, "eur", "€0.05"),
        (123456789, "gbp", "£1,234,567.89"),
        (500, "jpy", "¥500"),
        (1500000, "krw", "₩1,500,000"),
        (1250, "CHF", "CHF 12.50"),
        (0, "sek", "SEK 0.00"),
        (-300, "usd", "-$3.00"),
    ],
)
def test_amounts_in_minor_units_are_written_for_people(amount, currency, text):
    assert money_format(amount, currency) == text
