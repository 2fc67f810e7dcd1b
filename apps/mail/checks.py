"""`manage.py check --deploy` says when messages would not leave the machine."""

from django.conf import settings
from django.core.checks import Warning, register

UNSENT_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend": "printed to the console",
    "django.core.mail.backends.filebased.EmailBackend": "written to files",
    "django.core.mail.backends.locmem.EmailBackend": "kept in memory",
    "django.core.mail.backends.dummy.EmailBackend": "dropped",
}


@register("mail", deploy=True)
def check_mail_leaves_the_machine(app_configs, **kwargs) -> list[Warning]:
    fate = UNSENT_BACKENDS.get(settings.EMAIL_BACKEND)
    if fate is None:
        return []
    return [
        Warning(
            f"Outgoing mail is {fate}, not sent.",
            hint="Set EMAIL_URL to your SMTP relay, e.g. smtp+tls://user:password@smtp.example.com:587.",
            id="mail.W001",
        )
    ]
