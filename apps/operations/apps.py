from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """What operators watch: the admin's dashboard and the metrics a monitoring system scrapes.

    It reads the other apps (their selectors) and owns no model; nothing imports it.
    """

    name = "apps.operations"
    label = "operations"
    verbose_name = "Operations"
