"""The backfill and the reconciler (inline, over HTTP to the emulator), and what staff see."""

from io import StringIO

import pytest
import stripe
from django.core.management import call_command
from django.db import transaction

from apps.catalog import services as catalog
from apps.payments.mirror.models import MirrorKind, MirrorRecord, MirrorState
from apps.payments.mirror.outcomes import SyncOutcome
from apps.users import services as users
from tests.payments.helpers import stripe_objects_by_ref

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-unusual-passphrase-42"
OURS = "testsuite"  # STRIPE_APP_NAMESPACE of the test settings


def _client(emulator) -> stripe.StripeClient:
    return stripe.StripeClient(emulator.api_key, base_addresses={"api": emulator.url})


@pytest.fixture
def existing_data(settings):
    """A database from before the mirror: nothing of it is in Stripe."""
    enabled, settings.STRIPE_MIRROR_ENABLED = settings.STRIPE_MIRROR_ENABLED, False
    products = []
    for n in range(3):
        with transaction.atomic():
            product = catalog.product_create(name=f"Old product {n}")
            catalog.price_create(product=product, unit_amount=100 * (n + 1), currency="usd")
        products.append(product)
    people = [users.user_create(email=f"old{n}@example.com", password=PASSWORD) for n in range(2)]
    settings.STRIPE_MIRROR_ENABLED = enabled
    return products, people


def _mirror_gone_and_a_twin(emulator, product) -> tuple[str, str, str]:
    """The product is mirrored, then its row points at a Stripe object that is gone, while another Stripe
    object carries its ref: its ref, the first mirror's id and the twin's."""
    _run("stripe_mirror", "--all")
    ref = f"catalog.product:{product.pk}"
    twin = _client(emulator).v1.products.create(
        params={"name": product.name, "metadata": {"app_ref": ref, "app_namespace": OURS}}
    )
    record = MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT, object_id=product.pk)
    first_mirror = record.get().stripe_id
    record.update(stripe_id="prod_gone")
    return ref, first_mirror, twin.id


def _outcome_by_kind(outcomes: dict[str, SyncOutcome]):
    """A sync that pushes nothing and answers what `outcomes` says for the row's kind (another task holding
    its lease, a Stripe object that mirrors another row)."""

    def sync(*, record_id: int, owner: str | None = None) -> SyncOutcome:
        return outcomes[MirrorRecord.objects.get(pk=record_id).kind]

    return sync


def _table_row(output: str, kind: str) -> dict[str, int]:
    """The counts of one kind in `stripe_reconcile`'s table."""
    row = next(line for line in output.splitlines() if line.startswith(kind))
    counts = [int(cell) for cell in row.split()[1:]]
    columns = ("local", "stripe", "missing", "extra", "differing", "repaired", "not repaired")
    return dict(zip(columns, counts, strict=True))


def _run(*args) -> str:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


class TestStripeMirror:
    def test_backfills_everything_with_a_progress_bar_and_a_summary(self, mirror_on, existing_data):
        output = _run("stripe_mirror", "--all")

        assert "Mirrored 5, already in Stripe 3" in output  # the 3 prices went inside their products
        assert "Product → Product" in output
        assert "3/3" in output
        assert len(stripe_objects_by_ref(mirror_on, "products")) == 3
        assert len(stripe_objects_by_ref(mirror_on, "prices")) == 3
        assert len(stripe_objects_by_ref(mirror_on, "customers")) == 2
        # One write per product and its price: the backfill embeds prices too.
        assert len([r for r in mirror_on.requests_seen(method="POST") if r["endpoint"] == "/v1/prices"]) == 0

    def test_a_second_run_continues_where_the_first_stopped(self, mirror_on, existing_data):
        _run("stripe_mirror", "--model", "catalog.product")  # as if Ctrl-C came after the products

        output = _run("stripe_mirror", "--all")

        assert "already in Stripe 6" in output  # 3 products, and their 3 prices embedded in them
        assert "Mirrored 2" in output
        assert len(stripe_objects_by_ref(mirror_on, "products")) == 3

    def test_force_pushes_again(self, mirror_on, existing_data):
        _run("stripe_mirror", "--all")

        output = _run("stripe_mirror", "--model", "users.user", "--force")

        assert "Mirrored 2, already in Stripe 0" in output
        assert len([r for r in mirror_on.requests_seen(method="POST") if r["endpoint"] == "/v1/customers/{id}"]) == 2
        assert len(stripe_objects_by_ref(mirror_on, "customers")) == 2

    def test_refuses_without_stripe(self, settings):
        settings.STRIPE_MIRROR_ENABLED = False

        with pytest.raises(Exception, match="The mirror is off"):
            _run("stripe_mirror", "--all")

    def test_a_lost_lease_or_a_conflict_is_not_counted_as_mirrored(self, mirror_on, existing_data, monkeypatch):
        from apps.payments.mirror.management.commands import stripe_mirror

        lost, conflict = SyncOutcome.LEASE_LOST, SyncOutcome.CONFLICT
        outcomes = {MirrorKind.PRODUCT: lost, MirrorKind.PRICE: lost, MirrorKind.USER: conflict}
        monkeypatch.setattr(stripe_mirror, "mirror_sync", _outcome_by_kind(outcomes))

        output = _run("stripe_mirror", "--all")

        # 3 products and their 3 prices are another task's to finish; the 2 customers failed.
        assert "Mirrored 0, already in Stripe 0, queued 0, waiting 6, failed 2." in output


class TestStripeReconcile:
    def test_reports_and_repairs_missing_extra_and_differing(self, mirror_on, existing_data):
        products, people = existing_data
        _run("stripe_mirror", "--all")
        client = _client(mirror_on)
        record = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=products[0].pk)
        client.v1.products.update(record.stripe_id, params={"name": "Renamed in the dashboard"})  # differing
        gone = MirrorRecord.objects.get(kind=MirrorKind.USER, object_id=people[0].pk)
        client.v1.customers.delete(gone.stripe_id)  # missing
        stray = client.v1.customers.create(
            params={"email": "x@example.com", "metadata": {"app_ref": "users.user:999999", "app_namespace": OURS}}
        )
        # Another installation on the same Stripe account: its user 1 is not our user 1.
        theirs = client.v1.customers.create(
            params={
                "email": "theirs@example.com",
                "metadata": {"app_ref": f"users.user:{people[1].pk}", "app_namespace": "another-laptop"},
            }
        )

        report = _run("stripe_reconcile", "--dry-run")
        repaired = _run("stripe_reconcile")
        clean = _run("stripe_reconcile", "--dry-run")

        assert f"differing: catalog.product:{products[0].pk}" in report
        assert f"missing: users.user:{people[0].pk}" in report
        assert f"extra: users.user:999999 {stray.id}" in report
        assert "Dry run: nothing was changed." in report
        assert client.v1.products.retrieve(record.stripe_id).name == products[0].name
        assert client.v1.customers.retrieve(stray.id).deleted is True
        assert theirs.id not in report + repaired
        assert not getattr(client.v1.customers.retrieve(theirs.id), "deleted", False)
        assert len(stripe_objects_by_ref(mirror_on, "customers")) == 2
        for drift in ("missing:", "extra:", "differing:"):
            assert drift not in clean
        assert "repaired" in repaired

    def test_a_repair_that_lost_its_lease_or_met_a_conflict_is_reported_not_repaired(
        self, mirror_on, existing_data, monkeypatch
    ):
        from apps.payments.mirror import sync

        products, people = existing_data
        _run("stripe_mirror", "--all")
        client = _client(mirror_on)
        record = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=products[0].pk)
        client.v1.products.update(record.stripe_id, params={"name": "Renamed in the dashboard"})  # differing
        client.v1.customers.delete(MirrorRecord.objects.get(kind=MirrorKind.USER, object_id=people[0].pk).stripe_id)
        outcomes = {MirrorKind.PRODUCT: SyncOutcome.LEASE_LOST, MirrorKind.USER: SyncOutcome.CONFLICT}
        monkeypatch.setattr(sync, "mirror_sync", _outcome_by_kind(outcomes))

        output = _run("stripe_reconcile", "--model", "catalog.product", "--model", "users.user")

        products_row, users_row = _table_row(output, "catalog.product"), _table_row(output, "users.user")
        assert (products_row["differing"], products_row["repaired"], products_row["not repaired"]) == (1, 0, 1)
        assert (users_row["missing"], users_row["repaired"], users_row["not repaired"]) == (1, 0, 1)
        assert f"not repaired: catalog.product:{products[0].pk} lease lost" in output
        assert f"not repaired: users.user:{people[0].pk} conflict" in output

    def test_an_object_mirrored_before_namespaces_is_its_rows_not_missing(self, mirror_on, existing_data):
        """Objects pushed before each carried our namespace are still the mirrors their rows hold."""
        products, _ = existing_data
        _run("stripe_mirror", "--all")
        record = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=products[0].pk)
        _client(mirror_on).v1.products.update(record.stripe_id, params={"metadata": {"app_namespace": ""}})
        # One with neither our namespace nor a row that holds it stays someone else's.
        stranger = _client(mirror_on).v1.products.create(
            params={"name": "Unmarked", "metadata": {"app_ref": f"catalog.product:{products[1].pk}"}}
        )

        report = _run("stripe_reconcile", "--model", "catalog.product", "--dry-run")

        assert _table_row(report, "catalog.product") == {
            "local": 3,
            "stripe": 3,
            **dict.fromkeys(("missing", "extra", "differing", "repaired", "not repaired"), 0),
        }
        assert stranger.id not in report
        _run("stripe_reconcile", "--model", "catalog.product")
        assert MirrorRecord.objects.get(pk=record.pk).stripe_id == record.stripe_id  # no second object for it
        named_first = [
            obj.id
            for obj in _client(mirror_on).v1.products.list(params={"limit": 100}).data
            if obj.metadata.get("app_ref") == f"catalog.product:{products[0].pk}"
        ]
        assert named_first == [record.stripe_id]
        assert _client(mirror_on).v1.products.retrieve(stranger.id).active is True  # not ours to archive

    def test_metadata_only_stripe_holds_is_repaired_once_and_stays_repaired(self, mirror_on, existing_data):
        products, _ = existing_data
        _run("stripe_mirror", "--all")
        record = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=products[0].pk)
        _client(mirror_on).v1.products.update(record.stripe_id, params={"metadata": {"shelf": "B2"}})

        first = _run("stripe_reconcile", "--model", "catalog.product")
        second = _run("stripe_reconcile", "--model", "catalog.product", "--dry-run")

        assert f"differing: catalog.product:{products[0].pk}" in first
        assert "differing:" not in second
        held = _client(mirror_on).v1.products.retrieve(record.stripe_id).metadata.to_dict()
        assert "shelf" not in held
        assert held["app_ref"] == f"catalog.product:{products[0].pk}"

    def test_a_stopped_run_continues_from_its_last_page(self, mirror_on, existing_data, monkeypatch):
        from apps.payments.mirror import reconcile

        monkeypatch.setattr(reconcile, "PAGE", 1)  # three products: three pages
        _run("stripe_mirror", "--all")
        products, _ = existing_data
        record = MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=products[0].pk)
        _client(mirror_on).v1.products.update(record.stripe_id, params={"name": "Renamed in the dashboard"})

        def list_reads() -> int:
            return len([r for r in mirror_on.requests_seen(method="GET") if r["endpoint"] == "/v1/products"])

        def stop_after_the_first_page(done: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            reconcile.reconcile(MirrorKind.PRODUCT, repair=False, on_step=stop_after_the_first_page)
        read_before_stop = list_reads()
        continued = _run("stripe_reconcile", "--model", "catalog.product", "--dry-run")
        read_in_all = list_reads()
        afresh = _run("stripe_reconcile", "--model", "catalog.product", "--dry-run", "--restart")

        assert read_before_stop == 1
        assert "continued the run that was stopped" in continued
        assert "continued" not in afresh
        # The continued run read only the pages the stopped one had not: together, as many as one whole run.
        assert read_in_all == list_reads() - read_in_all
        for output in (continued, afresh):
            assert f"differing: catalog.product:{products[0].pk}" in output
            [summary] = [line.split() for line in output.splitlines() if line.startswith("catalog.product ")]
            # local, stripe, missing, extra, differing, repaired, not repaired
            assert summary[1:] == ["3", "3", "0", "0", "1", "0", "0"]

    def test_a_second_run_of_the_same_kind_is_refused_while_one_runs(self, mirror_on, existing_data, transactional_db):
        # Committed as the command commits: a refused run's statement leaves no lock on the other's row behind.
        import psycopg
        from django.db import connection

        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other_process:
            other_process.execute(
                "INSERT INTO payments_reconcilehold (kind, holder, held_until) "
                "VALUES ('catalog.product', 'another process', now() + interval '2 minutes')"
            )
            try:
                with pytest.raises(Exception, match=r"another stripe_reconcile of catalog\.product is running"):
                    _run("stripe_reconcile", "--model", "catalog.product")
                _run("stripe_reconcile", "--model", "users.user", "--dry-run")  # another kind may run
            finally:
                other_process.execute("DELETE FROM payments_reconcilehold")

    def test_an_object_naming_a_local_object_whose_mirror_is_gone_is_adopted_once(self, mirror_on, existing_data):
        products, _ = existing_data
        client = _client(mirror_on)
        ref, first_mirror, twin_id = _mirror_gone_and_a_twin(mirror_on, products[1])

        report = _run("stripe_reconcile", "--model", "catalog.product")
        clean = _run("stripe_reconcile", "--model", "catalog.product", "--dry-run")

        assert f"missing: {ref}" in report
        carrying = stripe_objects_by_ref(mirror_on, "products")[ref]
        live = [stripe_id for stripe_id in carrying if client.v1.products.retrieve(stripe_id).active]
        assert sorted(carrying) == sorted([twin_id, first_mirror])  # one adopted, the other archived
        assert live == [MirrorRecord.objects.get(kind=MirrorKind.PRODUCT, object_id=products[1].pk).stripe_id]
        for drift in ("missing:", "extra:", "differing:"):
            assert drift not in clean

    def test_extra_customers_are_deleted_after_stripe_is_read_not_under_the_cursor(
        self, mirror_on, existing_data, monkeypatch
    ):
        from apps.payments.mirror import reconcile

        monkeypatch.setattr(reconcile, "PAGE", 1)  # each customer is the last of its page: the next page's cursor
        _run("stripe_mirror", "--all")
        client = _client(mirror_on)
        strays = [
            client.v1.customers.create(
                params={
                    "email": f"x{n}@example.com",
                    "metadata": {"app_ref": f"users.user:99999{n}", "app_namespace": OURS},
                }
            )
            for n in range(2)
        ]

        repaired = _run("stripe_reconcile", "--model", "users.user")

        for stray in strays:
            assert "extra: users.user:99999" in repaired
            assert client.v1.customers.retrieve(stray.id).deleted is True
        assert len(stripe_objects_by_ref(mirror_on, "customers")) == 2

    def test_a_run_stopped_after_adopting_does_not_retire_what_it_adopted(self, mirror_on, existing_data):
        from apps.payments.mirror.models import ReconcileRun

        products, _ = existing_data
        client = _client(mirror_on)
        ref, _, twin_id = _mirror_gone_and_a_twin(mirror_on, products[1])
        record = MirrorRecord.objects.filter(kind=MirrorKind.PRODUCT, object_id=products[1].pk)
        _run("stripe_reconcile", "--model", "catalog.product")
        adopted = record.get().stripe_id
        # As if killed after adopting, before the run wrote that its claims were settled.
        claims = [{"object_id": products[1].pk, "id": adopted, "live": True, "metadata": {"app_ref": ref}}]
        run = ReconcileRun.objects.latest("started_at")
        ReconcileRun.objects.filter(pk=run.pk).update(phase="claimed", finished_at=None, claims=claims)

        continued = _run("stripe_reconcile", "--model", "catalog.product")

        assert "continued the run that was stopped" in continued
        assert record.get().stripe_id == adopted
        assert client.v1.products.retrieve(adopted).active is True
        assert twin_id in stripe_objects_by_ref(mirror_on, "products")[ref]

    def test_a_price_replaced_while_a_run_is_stopped_keeps_its_new_stripe_price(
        self, mirror_on, existing_data, monkeypatch
    ):
        from apps.payments.mirror import reconcile
        from apps.payments.mirror.sync import mirror_sync

        monkeypatch.setattr(reconcile, "PAGE", 1)
        _run("stripe_mirror", "--all")
        price = existing_data[0][0].prices.get()
        record = MirrorRecord.objects.filter(kind=MirrorKind.PRICE, object_id=price.pk)
        old_id = record.get().stripe_id

        def stop_after_the_first_page(done: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            reconcile.reconcile(MirrorKind.PRICE, repair=True, on_step=stop_after_the_first_page)
        # Repriced meanwhile: a new Stripe price, newer than the run's cursor, replaces the old one.
        catalog.price_update(price=price, data={"unit_amount": 777})
        mirror_sync(record_id=record.get().pk)
        new_id = record.get().stripe_id

        continued = _run("stripe_reconcile", "--model", "catalog.price")

        client = _client(mirror_on)
        assert "continued the run that was stopped" in continued
        assert "missing:" not in continued
        assert record.get().stripe_id == new_id != old_id
        assert (client.v1.prices.retrieve(new_id).active, client.v1.prices.retrieve(new_id).unit_amount) == (True, 777)
        assert client.v1.prices.retrieve(old_id).active is False


class TestStaffApi:
    URL = "/api/v1/payments/mirror/"

    def test_staff_list_failed_rows_and_send_them_again(self, staff_client, settings):
        settings.STRIPE_MIRROR_ENABLED = True
        settings.STRIPE_SECRET_KEY = "sk_test_notUsedBecauseNothingIsQueued000"
        product = catalog.product_create(name="Tea")
        MirrorRecord.objects.filter(object_id=product.pk).update(state=MirrorState.FAILED, last_error="refused")

        listed = staff_client.get(self.URL, {"state": "failed"})
        retried = staff_client.post(f"{self.URL}{listed.json()['results'][0]['id']}/retry")

        assert listed.status_code == 200
        [row] = listed.json()["results"]
        assert (row["app_ref"], row["state"], row["last_error"]) == (
            f"catalog.product:{product.pk}",
            "failed",
            "refused",
        )
        assert retried.status_code == 202
        assert retried.json()["state"] == "pending"
        assert retried.json()["version"] == 2

    def test_only_staff(self, user_client, api_client):
        assert user_client.get(self.URL).status_code == 403
        assert api_client.get(self.URL).status_code == 401

    def test_bad_filter_is_400(self, staff_client):
        assert staff_client.get(self.URL, {"state": "sideways"}).status_code == 400


def test_admin_lists_rows_filters_failed_and_mirrors_again(client, settings):
    from tests.users.factories import UserFactory

    settings.STRIPE_MIRROR_ENABLED = True
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    product = catalog.product_create(name="Tea")
    record = MirrorRecord.objects.get(object_id=product.pk)
    MirrorRecord.objects.filter(pk=record.pk).update(state=MirrorState.FAILED, last_error="Currency refused")

    page = client.get("/admin/payments/mirrorrecord/", {"state__exact": "failed"})
    client.post("/admin/payments/mirrorrecord/", {"action": "mirror_again", "_selected_action": [record.pk]})

    assert page.status_code == 200
    assert "Currency refused" in page.content.decode()
    record.refresh_from_db()
    assert (record.state, record.version) == (MirrorState.PENDING, 2)
