"""The `money` filter as the mail templates use it: `{{ amount|money:currency }}`."""

import pytest
from django.template import Context, Template, TemplateSyntaxError

from apps.mail.money import money_format


def render(source: str, **context) -> str:
    return Template("{% load mail_format %}" + source).render(Context(context))


def test_the_currency_is_read_from_another_variable_of_the_context():
    order = {"amount_total": 123456, "currency": "eur"}

    assert render("{{ order.amount_total|money:order.currency }}", order=order) == money_format(123456, "eur")


def test_an_amount_given_as_text_is_written_as_the_number_it_holds():
    # Values that come from JSON or a query string arrive as text.
    assert render("{{ amount|money:'usd' }}", amount="1999") == money_format(1999, "usd")


def test_the_same_amount_reads_differently_in_a_zero_decimal_currency():
    usd = render("{{ amount|money:'usd' }}", amount=500)
    jpy = render("{{ amount|money:'jpy' }}", amount=500)

    assert usd != jpy
    assert "." in usd
    assert "." not in jpy


def test_the_amount_is_escaped_in_html_like_any_other_text():
    # Currencies without a symbol are written with their code; none may smuggle markup into a message.
    assert render("{{ amount|money:code }}", amount=100, code="<b>") == "&lt;B&gt; 1.00"


def test_the_filter_needs_a_currency():
    with pytest.raises(TemplateSyntaxError):
        render("{{ amount|money }}", amount=100)
