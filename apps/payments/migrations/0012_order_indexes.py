from django.db import migrations, models
from django.db.models.functions import Upper

from config.migration_operations import AddIndexWithoutLocking


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("payments", "0011_reconcile_runs"),
    ]

    operations = [
        AddIndexWithoutLocking(
            model_name="order",
            index=models.Index(
                condition=models.Q(("paid_at__isnull", False)), fields=["paid_at"], name="payments_order_paid_idx"
            ),
        ),
        AddIndexWithoutLocking(
            model_name="order",
            index=models.Index(Upper("email"), name="payments_order_email_idx"),
        ),
    ]
