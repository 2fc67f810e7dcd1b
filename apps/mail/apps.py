from django.apps import AppConfig


class MailConfig(AppConfig):
    """Owns every outgoing message; other apps send signals and mail decides."""

    name = "apps.mail"
    label = "mail"
    verbose_name = "Mail"

    def ready(self) -> None:
        from apps.mail import checks, receivers  # noqa: F401 - registers the deploy check, connects the receivers
