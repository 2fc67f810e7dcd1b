"""`user_get`: a user by id, or None."""

import pytest

from apps.users.selectors import user_get
from apps.users.services import user_delete
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_finds_the_user_with_that_id():
    user = UserFactory()
    UserFactory()

    assert user_get(user_id=user.pk) == user


def test_a_deleted_user_is_none_rather_than_an_error():
    user = UserFactory()
    user_id = user.pk
    user_delete(user=user)

    assert user_get(user_id=user_id) is None


def test_a_deactivated_user_is_still_found():
    # Deactivating stops logins; what the user bought and was mailed still belongs to them.
    user = UserFactory(is_active=False)

    assert user_get(user_id=user.pk) == user
