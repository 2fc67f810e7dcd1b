"""`message_render` on its own: a header-safe subject, tidy plain text, and the site named as configured."""

from types import SimpleNamespace

import pytest
from django.template import TemplateDoesNotExist

from apps.mail.models import MessageKind
from apps.mail.rendering import message_render


def canceled(plans: str) -> dict:
    return {"plans": plans, "customer_name": "Ada"}


def payment_failed(retry_url: str) -> dict:
    order = SimpleNamespace(pk=7, amount_total=1999, currency="usd")
    return {"order": order, "customer_name": "", "retry_url": retry_url}


def test_the_site_is_named_and_linked_as_configured(settings):
    settings.SITE_NAME = "Kettle & Co"
    settings.SITE_URL = "https://kettle.example"

    rendered = message_render(kind=MessageKind.SUBSCRIPTION_CANCELED, context=canceled("Pro"))

    assert rendered.text.rstrip().endswith("Kettle & Co - https://kettle.example")
    assert "Kettle &amp; Co" in rendered.html
    assert 'href="https://kettle.example"' in rendered.html


def test_a_name_with_line_breaks_cannot_add_a_header_through_the_subject():
    rendered = message_render(
        kind=MessageKind.SUBSCRIPTION_CANCELED, context=canceled("Pro\r\nBcc: eve@example.com\n\n  Plus")
    )

    assert "\n" not in rendered.subject
    assert "\r" not in rendered.subject
    assert "Pro Bcc: eve@example.com Plus" in rendered.subject


def test_a_subject_longer_than_the_column_holds_is_cut_to_fit():
    rendered = message_render(kind=MessageKind.SUBSCRIPTION_CANCELED, context=canceled("Plan " * 100))

    assert len(rendered.subject) == 255


@pytest.mark.parametrize("retry_url", ["", "https://checkout.stripe.com/c/pay/cs_test_1"], ids=["no-link", "link"])
def test_the_text_keeps_at_most_one_blank_line_between_paragraphs_and_ends_in_one_newline(retry_url):
    text = message_render(kind=MessageKind.PAYMENT_FAILED, context=payment_failed(retry_url)).text

    assert "\n\n\n" not in text
    assert text == text.lstrip()
    assert text.endswith("\n")
    assert not text.endswith("\n\n")


def test_a_kind_without_templates_is_an_error_rather_than_an_empty_message():
    with pytest.raises(TemplateDoesNotExist):
        message_render(kind="newsletter", context={})
