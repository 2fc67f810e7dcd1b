"""Django loads an app's admin from its `admin.py`: each slice of payments registers its own models in its own
`admin.py`, and this module loads them."""

from apps.payments.billing import admin as billing_admin  # noqa: F401
from apps.payments.gateway import admin as gateway_admin  # noqa: F401
from apps.payments.mirror import admin as mirror_admin  # noqa: F401
from apps.payments.orders import admin as orders_admin  # noqa: F401
from apps.payments.webhooks import admin as webhooks_admin  # noqa: F401
