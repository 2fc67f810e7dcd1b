from django import template

from apps.mail.money import money_format

register = template.Library()


@register.filter
def money(amount: int, currency: str) -> str:
    """`{{ order.amount_total|money:order.currency }}` -> "$19.99"."""
    return money_format(int(amount), currency)
