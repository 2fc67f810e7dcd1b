"""A message's subject, plain text and HTML, rendered from `templates/mail/<kind>/`."""

import re
from dataclasses import dataclass

from django.conf import settings
from django.template.loader import render_to_string


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str


def message_render(*, kind: str, context: dict) -> RenderedMessage:
    """Render the three templates of `kind`; the subject is folded onto one line (a header cannot hold more)."""
    context = {"site_name": settings.SITE_NAME, "site_url": settings.SITE_URL, **context}
    subject = " ".join(render_to_string(f"mail/{kind}/subject.txt", context).split())
    return RenderedMessage(
        subject=subject[:255],
        # Template tags leave blank lines behind; a reader sees at most one between paragraphs.
        text=re.sub(r"\n{3,}", "\n\n", render_to_string(f"mail/{kind}/body.txt", context)).strip() + "\n",
        html=render_to_string(f"mail/{kind}/body.html", context),
    )
