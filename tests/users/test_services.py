import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from apps.users import services
from apps.users.models import User
from apps.users.signals import user_changed, user_deleted, user_registered
from tests.signal_recorder import SignalRecorder
from tests.users.factories import UserFactory

STRONG_PASSWORD = "a-long-unusual-passphrase-42"


@pytest.mark.django_db
class TestSignals:
    def test_user_create_sends_user_registered_once_and_its_on_commit_work_runs_after_commit(
        self, django_capture_on_commit_callbacks
    ):
        with SignalRecorder(user_registered) as recorder, django_capture_on_commit_callbacks(execute=True) as callbacks:
            user = services.user_create(email="a@example.com", password=STRONG_PASSWORD)

        assert recorder.calls == [{"user_id": user.pk}]
        assert callbacks  # the receiver's, and the welcome message's
        assert recorder.committed == [{"user_id": user.pk}]

    def test_rolled_back_create_runs_no_on_commit_work(self, django_capture_on_commit_callbacks):
        def create_then_fail() -> None:
            with transaction.atomic():
                services.user_create(email="a@example.com", password=STRONG_PASSWORD)
                raise RuntimeError("the caller's transaction fails")

        with (
            SignalRecorder(user_registered) as recorder,
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(RuntimeError),
        ):
            create_then_fail()

        assert recorder.committed == []
        assert not User.objects.exists()

    def test_invalid_create_sends_nothing(self):
        with SignalRecorder(user_registered) as recorder, pytest.raises(ValidationError):
            services.user_create(email="a@example.com", password="123")

        assert recorder.calls == []

    def test_update_sends_user_changed_with_changed_fields_only(self):
        user = UserFactory(name="Old")

        with SignalRecorder(user_changed) as recorder:
            services.user_update(user=user, data={"name": "New", "email": user.email})
            services.user_update(user=user, data={"name": "New"})

        assert recorder.calls == [{"user_id": user.pk, "fields": ["name"]}]

    def test_delete_sends_user_deleted_with_the_email(self):
        user = UserFactory()
        user_id, email = user.pk, user.email

        with SignalRecorder(user_deleted) as recorder:
            services.user_delete(user=user)

        assert recorder.calls == [{"user_id": user_id, "email": email}]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_registrations_for_one_email_give_one_user_and_one_field_error():
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def register(email: str) -> None:
        barrier.wait()
        try:
            services.user_create(email=email, password=STRONG_PASSWORD)
            outcomes.append("created")
        except ValidationError as exc:
            outcomes.append(f"refused:{sorted(exc.message_dict)}")
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(email,)) for email in ("race@example.com", "RACE@example.com")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["created", "refused:['email']"]
    assert User.objects.filter(email="race@example.com").count() == 1


@pytest.mark.django_db
def test_update_writes_only_the_changed_fields():
    user = UserFactory(name="Old")
    User.objects.filter(pk=user.pk).update(is_staff=True)  # changed elsewhere meanwhile

    services.user_update(user=user, data={"name": "New"})

    user.refresh_from_db()
    assert (user.name, user.is_staff) == ("New", True)
