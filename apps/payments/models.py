"""Django loads an app's models from its `models.py`: payments keeps each slice's in the slice's own
`models.py`, and this module only imports them (all under the app label `payments`, so no table or
permission depends on where a model's code lives). Import a model from its slice."""

from apps.payments.billing import models as billing_models  # noqa: F401
from apps.payments.gateway import models as gateway_models  # noqa: F401
from apps.payments.mirror import models as mirror_models  # noqa: F401
from apps.payments.orders import models as orders_models  # noqa: F401
from apps.payments.webhooks import models as webhooks_models  # noqa: F401
