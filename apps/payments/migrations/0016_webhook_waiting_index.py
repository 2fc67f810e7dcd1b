from django.db import migrations, models

from config.migration_operations import AddIndexWithoutLocking


class Migration(migrations.Migration):
    # A live table of events keeps taking webhooks while the index is built (CREATE INDEX CONCURRENTLY).
    atomic = False

    dependencies = [
        ("payments", "0015_subscription_versions"),
    ]

    operations = [
        AddIndexWithoutLocking(
            model_name="webhookevent",
            index=models.Index(
                condition=models.Q(("state", "received")), fields=["id"], name="payments_webhook_waiting_idx"
            ),
        ),
    ]
