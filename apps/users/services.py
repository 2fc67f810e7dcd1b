"""Every write to users goes through here; each sends the matching signal."""

import uuid
from datetime import timedelta

from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.users.models import EMAIL_TAKEN, User, normalize_email
from apps.users.signals import email_verification_requested, user_changed, user_deleted, user_registered

EMAIL_VERIFICATION_SALT = "users.email-verification"
EMAIL_VERIFICATION_MAX_AGE = timedelta(days=7)

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
    if "email" in changed and user.email_verified:
        user.email_verified = False  # the new address is not proven yet
        changed.append("email_verified")
    user.full_clean(exclude=["password"])
    # Only what changed: a concurrent write to other fields is not overwritten with stale values.
    _save_unique_email(user, update_fields=[*changed, "updated_at"])
    user_changed.send(sender=User, user_id=user.pk, fields=changed)
    if "email" in changed:
        email_verification_requested.send(sender=User, user_id=user.pk, request_id=uuid.uuid4().hex)
    return user


def email_verification_token(*, user: User) -> str:
    """A signed token proving whoever holds it received mail at the user's current address."""
    return signing.dumps({"user": user.pk, "email": user.email}, salt=EMAIL_VERIFICATION_SALT)


@transaction.atomic
def user_verify_email(*, token: str) -> User:
    """Mark the address of the token's user verified; a field error for a token that is forged, expired,
    or was sent to an address the account no longer has."""
    try:
        claim = signing.loads(token, salt=EMAIL_VERIFICATION_SALT, max_age=EMAIL_VERIFICATION_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise ValidationError({"token": ["This link has expired; ask for a new one."]}) from exc
    except signing.BadSignature as exc:
        raise ValidationError({"token": ["This link is not valid."]}) from exc
    user = User.objects.select_for_update().filter(pk=claim.get("user")).first()
    if user is None or user.email != claim.get("email"):
        raise ValidationError({"token": ["This link was sent to an address this account no longer has."]})
    if not user.email_verified:
        user.email_verified = True
        user.save(update_fields=["email_verified", "updated_at"])
        user_changed.send(sender=User, user_id=user.pk, fields=["email_verified"])
    return user


@transaction.atomic
def user_request_email_verification(*, user: User) -> bool:
    """Send the verification link again; False (nothing sent) when the address is verified already."""
    if user.email_verified:
        return False
    email_verification_requested.send(sender=User, user_id=user.pk, request_id=uuid.uuid4().hex)
    return True


@transaction.atomic
def user_delete(*, user: User) -> None:
    """Delete the user for good; sends `user_deleted` with what receivers still need."""
    user_id, email = user.pk, user.email
    user.delete()
    user_deleted.send(sender=User, user_id=user_id, email=email)
