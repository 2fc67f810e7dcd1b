import factory

from apps.users.models import User

TEST_PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = factory.django.Password(TEST_PASSWORD)


def grant(user: User, *perms: str) -> User:
    """Give `user` Django permissions by their `app_label.codename` names; answers a fresh copy (Django caches
    a user's permissions on the instance)."""
    from django.contrib.auth.models import Permission

    for name in perms:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return User.objects.get(pk=user.pk)


# What the shop's operators hold in the tests that are not about permissions.
OPERATOR_PERMISSIONS = (
    "catalog.view_product",
    "catalog.add_product",
    "catalog.change_product",
    "catalog.view_price",
    "catalog.add_price",
    "catalog.change_price",
    "payments.view_order",
    "payments.change_order",
    "payments.refund_order",
    "payments.view_payment",
    "djstripe.view_subscription",
    "djstripe.change_subscription",
    "payments.view_mirrorrecord",
    "payments.change_mirrorrecord",
    "payments.view_webhookevent",
    "payments.change_webhookevent",
    "mail.view_outgoingmessage",
    "mail.change_outgoingmessage",
)


def operator(**fields) -> User:
    """A staff member with every operator permission (not a superuser)."""
    return grant(UserFactory(is_staff=True, **fields), *OPERATOR_PERMISSIONS)
