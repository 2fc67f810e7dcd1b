"""Every write to users goes through here; each sends the matching signal."""

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.users.models import EMAIL_TAKEN, User, normalize_email
from apps.users.signals import user_changed, user_deleted, user_registered

UPDATABLE_FIELDS = ("email", "name")


def _save_unique_email(user: User, update_fields: list[str] | None = None) -> None:
    """Save, turning a lost race for the same email into a field error instead of a 500."""
    try:
        with transaction.atomic():
            user.save(update_fields=update_fields)
    except IntegrityError as exc:
        if User.objects.filter(email=user.email).exclude(pk=user.pk).exists():
            raise ValidationError({"email": [EMAIL_TAKEN]}) from exc
        raise


def _validate_new_user(user: User, password: str) -> None:
    errors: dict[str, list[str]] = {}
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        errors["password"] = exc.messages
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def user_create(
    *, email: str, password: str, name: str = "", is_staff: bool = False, is_superuser: bool = False
) -> User:
    """Create a user after Django's password validators approve; sends `user_registered`."""
    user = User(email=normalize_email(email), name=name.strip(), is_staff=is_staff, is_superuser=is_superuser)
    _validate_new_user(user, password)
    user.set_password(password)
    _save_unique_email(user)
    user_registered.send(sender=User, user_id=user.pk)
    return user


@transaction.atomic
def user_update(*, user: User, data: dict) -> User:
    """Change the profile fields given in `data`; sends `user_changed` only if something changed."""
    unknown = set(data) - set(UPDATABLE_FIELDS)
    if unknown:
        raise ValidationError({field: ["This field cannot be changed."] for field in sorted(unknown)})
    if "email" in data:
        data = {**data, "email": normalize_email(data["email"])}
    if "name" in data:
        data = {**data, "name": data["name"].strip()}
    changed = [field for field in UPDATABLE_FIELDS if field in data and getattr(user, field) != data[field]]
    if not changed:
        return user
    for field in changed:
        setattr(user, field, data[field])
    user.full_clean(exclude=["password"])
    # Only what changed: a concurrent write to other fields is not overwritten with stale values.
    _save_unique_email(user, update_fields=[*changed, "updated_at"])
    user_changed.send(sender=User, user_id=user.pk, fields=changed)
    return user


@transaction.atomic
def user_delete(*, user: User) -> None:
    """Delete the user for good; sends `user_deleted` with what receivers still need."""
    user_id, email = user.pk, user.email
    user.delete()
    user_deleted.send(sender=User, user_id=user_id, email=email)
