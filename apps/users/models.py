from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from apps.users.validators import validate_deliverable_email


def normalize_email(email: str) -> str:
    """Emails are stored lowercased, so uniqueness and login ignore case."""
    return email.strip().lower()


class UserManager(BaseUserManager):
    """What `createsuperuser` and Django's auth need; application code uses `users.services`."""

    use_in_migrations = True

    def get_by_natural_key(self, email: str) -> "User":
        return self.get(email=normalize_email(email))

    def create_user(self, email: str, password: str | None = None, **fields) -> "User":
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields) -> "User":
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)


EMAIL_TAKEN = "A user with this email address already exists."


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(
        "email address",
        unique=True,
        validators=[validate_deliverable_email],
        error_messages={"unique": EMAIL_TAKEN},
    )
    name = models.CharField(max_length=150, blank=True)
    email_verified = models.BooleanField(
        default=False, help_text="The owner of the address followed the link we sent to it (reset when it changes)."
    )
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Can log into the admin and manage the catalog.")
    date_joined = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        ordering = ("-date_joined", "-id")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(email=Lower("email")),
                name="users_user_email_lowercase",
                violation_error_message="Email addresses are stored lowercased.",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)

    @property
    def app_ref(self) -> str:
        """The stable reference other systems hold for this user (`users.user:<pk>`)."""
        return f"{self._meta.label_lower}:{self.pk}"
