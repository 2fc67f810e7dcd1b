"""Amounts in minor units, written for people: 1999 usd -> "$19.99", 500 jpy -> "¥500"."""

from apps.catalog.currencies import ZERO_DECIMAL_CURRENCIES

# Symbols a reader of that currency knows at a glance; any other currency is written with its code.
SYMBOLS = {
    "usd": "$",
    "eur": "€",
    "gbp": "£",
    "jpy": "¥",
    "inr": "₹",
    "krw": "₩",
    "cny": "CN¥",
    "aud": "A$",
    "cad": "CA$",
    "nzd": "NZ$",
    "hkd": "HK$",
    "sgd": "S$",
    "mxn": "MX$",
    "brl": "R$",
}


def money_format(amount: int, currency: str) -> str:
    """Integer minor units of `currency` as text, with thousands separated; no floats on the way."""
    currency = currency.lower()
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if currency in ZERO_DECIMAL_CURRENCIES:
        number = f"{amount:,}"
    else:
        whole, cents = divmod(amount, 100)
        number = f"{whole:,}.{cents:02d}"
    symbol = SYMBOLS.get(currency)
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{currency.upper()} {number}"
