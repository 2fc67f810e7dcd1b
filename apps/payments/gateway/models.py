"""What the gateway keeps: which installation this is in a Stripe account others may share."""

from django.db import models


class Installation(models.Model):
    """This installation's namespace in a Stripe account that other installations may share.

    Generated once; every Stripe object we mirror carries it beside its `app_ref`, and
    objects of other namespaces are never adopted, matched or reconciled.
    """

    namespace = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.namespace
