"""docker-compose.yml and the Procfile are documentation that runs: keep them true to the code."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice (a plain load keeps the last one silently; compose refuses it)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge"]
        repeated = {key for key in keys if keys.count(key) > 1}
        if repeated:
            raise yaml.constructor.ConstructorError(None, None, f"repeated keys {sorted(repeated)}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _compose() -> dict:
    return yaml.load((ROOT / "docker-compose.yml").read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader


# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}: compose's own interpolation.
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    pass


def _interpolate(value, environment: dict[str, str]):
    """What compose makes of the file's values given `environment` (compose refuses to start on `?`)."""
    if isinstance(value, dict):
        return {key: _interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"] or "", match["arg"] or ""
        given = environment.get(name)
        missing = given is None or (op.startswith(":") and given == "")
        if op.endswith("?") and missing:
            raise MissingVariable(f"{name}: {arg}")
        if op.endswith("-") and missing:
            return arg
        return given or ""

    return _VARIABLE.sub(substitute, value)


def _app_environment(environment: dict[str, str]) -> dict[str, str]:
    """The environment compose gives the web service."""
    web = _interpolate(_compose()["services"]["web"], environment)
    return {name: str(value) for name, value in web["environment"].items()}


DEV_ENV = dict(
    line.split("=", 1)
    for line in (ROOT / "compose.dev.env").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
STRONG = "k3Jx9-Qw0Zr2Tn8Vb5Lm1Yc7Hd4Gf6Sa0Pe3Ui9Oo2Kq5Wz8Xv1Rt4Ny7Mb6Cj"
REAL_ENV = {
    "DJANGO_SECRET_KEY": STRONG,
    "JWT_SIGNING_KEY": STRONG[::-1] + "x",
    "POSTGRES_PASSWORD": "a-database-password",
    "STRIPE_SECRET_KEY": "sk_live_51Hx0000RealLookingLiveKey000000000000",
    "STRIPE_WEBHOOK_SECRET": "whsec_4eC39HqLyjWDarjtT1zdp7dcRealLooking",
    "EMAIL_URL": "smtp+tls://mailer:password@smtp.example.com:587",
    "SITE_URL": "https://shop.example.com",
}
APP_SERVICES = ("web", "worker-payments", "worker-mail", "beat", "migrate")
SECRETS = ("DJANGO_SECRET_KEY", "JWT_SIGNING_KEY", "POSTGRES_PASSWORD", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")
# Every variable compose refuses to start without: the secrets, and where mail goes and the site lives.
REQUIRED = (*SECRETS, "EMAIL_URL", "SITE_URL")


def test_compose_runs_the_whole_stack():
    services = _compose()["services"]

    assert {"postgres", "redis", "web", "worker-payments", "worker-mail", "beat", "migrate"} <= set(services)
    assert {"stripe-emulator", "mailpit"} <= set(services)
    assert services["stripe-emulator"]["command"][:3] == ["python", "-m", "tools.stripe_emulator"]
    assert services["web"]["command"][:2] == ["gunicorn", "config.wsgi"]
    for name in APP_SERVICES:
        if name.startswith("worker"):
            assert services[name]["command"][:4] == ["celery", "-A", "config", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    assert "python -m config.deploy && python manage.py migrate" in services["migrate"]["command"][-1]
    for name in APP_SERVICES:
        environment = _interpolate(services[name], REAL_ENV)["environment"]
        assert environment["DATABASE_URL"] == "postgres://commerce:a-database-password@postgres:5432/commerce"
        assert environment["CELERY_BROKER_URL"].startswith("redis://")
        assert environment["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
        assert environment["DJANGO_DEBUG"] == "false"


def test_the_variables_compose_requires_are_each_tested():
    required = {m["name"] for m in _VARIABLE.finditer((ROOT / "docker-compose.yml").read_text()) if m["op"] == ":?"}

    assert required == set(REQUIRED)


@pytest.mark.parametrize("secret", REQUIRED)
def test_compose_refuses_to_start_without_each_secret(secret):
    environment = {name: value for name, value in REAL_ENV.items() if name != secret}

    with pytest.raises(MissingVariable, match=secret):
        _app_environment(environment)
    with pytest.raises(MissingVariable, match=secret):
        _app_environment({**environment, secret: ""})


def test_compose_holds_no_secret_of_its_own():
    environment = _app_environment(REAL_ENV)

    for name in SECRETS:
        if name in environment:
            assert environment[name] == REAL_ENV[name]
    assert environment["STRIPE_API_BASE"] == ""  # Stripe itself unless told otherwise


def test_every_setting_in_env_reaches_the_app():
    app = _compose()["x-app"]

    assert app["env_file"] == [{"path": ".env", "required": False}]
    for name in APP_SERVICES:
        assert _compose()["services"][name]["env_file"] == app["env_file"]


def test_the_health_check_asks_as_the_proxy_would():
    check = " ".join(_compose()["services"]["web"]["healthcheck"]["test"])

    assert "DJANGO_ALLOWED_HOSTS" in check
    assert "X-Forwarded-Proto" in check


def test_the_pooler_is_an_option_every_app_process_connects_through_when_told():
    pooled = {**REAL_ENV, "DATABASE_HOST": "pgbouncer", "DATABASE_TRANSACTION_POOLING": "true"}
    services = _interpolate(_compose()["services"], pooled)

    assert services["pgbouncer"]["profiles"] == ["pgbouncer"]
    assert services["pgbouncer"]["environment"]["POOL_MODE"] == "transaction"
    assert services["pgbouncer"]["environment"]["DATABASE_URL"] == (
        "postgres://commerce:a-database-password@postgres:5432/commerce"
    )
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"] == "postgres://commerce:a-database-password@pgbouncer:5432/commerce"
        assert environment["DATABASE_TRANSACTION_POOLING"] == "true"
    unpooled = _interpolate(_compose()["services"]["web"], REAL_ENV)["environment"]
    assert unpooled["DATABASE_TRANSACTION_POOLING"] == "false"


def test_only_the_web_port_is_published_and_on_loopback_unless_told():
    services = _interpolate(_compose()["services"], REAL_ENV)

    published = {name: service["ports"] for name, service in services.items() if service.get("ports")}
    assert published["web"] == ["127.0.0.1:8000:8000"]
    for name in ("stripe-emulator", "mailpit"):
        assert services[name]["profiles"] == ["dev"]
        assert all(port.startswith("127.0.0.1:") for port in published[name])
    assert set(published) == {"web", "stripe-emulator", "mailpit"}
    for name in APP_SERVICES:
        assert "mailpit" not in services[name].get("depends_on", {}), "a dev-only service cannot be required"


def test_dev_env_file_runs_the_emulator_and_mail_catcher_on_development_settings():
    environment = _app_environment(DEV_ENV)

    assert DEV_ENV["COMPOSE_PROFILES"] == "dev"
    assert environment["DJANGO_SETTINGS_MODULE"] == "config.settings.local"
    assert environment["STRIPE_API_BASE"] == "http://stripe-emulator:12111"
    assert environment["EMAIL_URL"] == "smtp://mailpit:1025"
    emulator = _interpolate(_compose()["services"]["stripe-emulator"], DEV_ENV)
    assert f"--webhook-secret={DEV_ENV['STRIPE_WEBHOOK_SECRET']}" in emulator["command"]


def _keys_of(environment: dict[str, str]) -> dict[str, str]:
    return {name: environment[name] for name in ("DJANGO_SECRET_KEY", "JWT_SIGNING_KEY")}


def _check_deploy(app_environment: dict[str, str]) -> subprocess.CompletedProcess:
    """`check --deploy` with what compose hands the app (addresses of compose's own network left as they are)."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STRIPE_", "JWT_", "EMAIL_"))}
    local = {"DATABASE_URL": "postgres:///postgres", "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15"}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env={**keep, **app_environment, **local, "DJANGO_SETTINGS_MODULE": "config.settings.production"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.integration  # starts manage.py or docker compose
def test_check_deploy_with_the_compose_dev_values_is_an_error_and_with_real_values_clean():
    dev = _check_deploy(_app_environment(DEV_ENV))
    dev_stripe_real_keys = _check_deploy(_app_environment({**DEV_ENV, **_keys_of(REAL_ENV)}))
    real = _check_deploy(_app_environment(REAL_ENV))

    assert dev.returncode != 0
    assert "DJANGO_SECRET_KEY is too weak for production" in dev.stderr  # the public development key
    assert dev_stripe_real_keys.returncode == 1
    assert "payments.E001" in dev_stripe_real_keys.stderr  # the emulator's address
    assert "payments.E003" in dev_stripe_real_keys.stderr  # a test key
    assert real.returncode == 0, real.stderr
    assert "no issues" in real.stdout


def test_env_example_names_every_secret_compose_requires():
    example = (ROOT / ".env.example").read_text()

    for name in SECRETS:
        assert f"\n{name}=\n" in example, name


def test_procfile_starts_web_worker_and_beat():
    processes = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())

    assert set(processes) == {"web", "worker", "beat"}
    assert processes["web"].startswith("gunicorn config.wsgi")
    assert processes["worker"].startswith("celery -A config worker")
    assert processes["beat"].startswith("celery -A config beat")


# `env_file` with `required: false` came with Docker Compose 2.24; older versions refuse the file.
COMPOSE_NEEDED = (2, 24)


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def _compose_version(command: list[str]) -> tuple[int, ...]:
    """`2.29.7` (or `v2.29.7`, or docker-compose 1.x's `1.29.2`) as numbers."""
    short = subprocess.run([*command, "version", "--short"], capture_output=True, text=True, check=False).stdout
    return tuple(int(part) for part in re.findall(r"\d+", short)[:3])


def _why_compose_cannot_check() -> str | None:
    command = _compose_command()
    if command is None:
        return "needs docker compose (or docker-compose) to parse the file"
    version = _compose_version(command)
    if version < COMPOSE_NEEDED:
        found = ".".join(map(str, version)) or "an unknown version"
        return f"needs Docker Compose 2.24 or later (env_file with required: false); {' '.join(command)} is {found}"
    return None


def _real_compose_config(environment: dict[str, str], env_file: Path) -> subprocess.CompletedProcess:
    """`docker compose config` as an operator runs it: values from an env file they wrote, none of the variables
    the compose file names taken from this machine's own environment (nor from an `.env` beside it)."""
    named = {m["name"] for m in _VARIABLE.finditer((ROOT / "docker-compose.yml").read_text())}
    env_file.write_text("".join(f"{name}={value}\n" for name, value in environment.items()))
    return subprocess.run(
        [*_compose_command(), "--env-file", str(env_file), "config", "-q"],
        cwd=ROOT,
        env={name: value for name, value in os.environ.items() if name not in named},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


COMPOSE_CANNOT_CHECK = _why_compose_cannot_check()
needs_compose = pytest.mark.skipif(COMPOSE_CANNOT_CHECK is not None, reason=COMPOSE_CANNOT_CHECK or "")


@pytest.mark.integration  # starts manage.py or docker compose
@needs_compose
def test_compose_file_is_valid(tmp_path):
    result = _real_compose_config(REAL_ENV, tmp_path / "real.env")

    assert result.returncode == 0, result.stderr


@pytest.mark.integration  # starts manage.py or docker compose
@needs_compose
@pytest.mark.parametrize("secret", REQUIRED)
def test_real_compose_names_a_missing_secret(secret, tmp_path):
    without = {name: value for name, value in REAL_ENV.items() if name != secret}

    result = _real_compose_config(without, tmp_path / "without.env")

    assert result.returncode != 0
    assert secret in result.stderr


def _queues_consumed(command: list[str]) -> set[str]:
    """The queues a `celery worker` command line consumes: its `--queues`, or every queue without one."""
    from config.celery import app as celery_app

    for flag in ("--queues", "-Q"):
        if flag in command:
            return set(command[command.index(flag) + 1].split(","))
    return set(celery_app.amqp.queues)


def _project_tasks() -> list[str]:
    from config.celery import app as celery_app

    # What a worker imports at start (every autodiscovered tasks.py), after the system checks it runs first.
    celery_app.loader.import_default_modules()
    return sorted(name for name in celery_app.tasks if name.startswith("apps."))


def test_every_task_lands_on_a_queue_a_compose_worker_consumes_and_mail_has_a_worker_of_its_own(db):
    from config.celery import app as celery_app

    services = _compose()["services"]
    consumed = {name: _queues_consumed(services[name]["command"]) for name in ("worker-payments", "worker-mail")}

    routes = {task: celery_app.amqp.router.route({}, task)["queue"].name for task in _project_tasks()}
    assert {"apps.payments.tasks.mirror_sync_task", "apps.mail.tasks.message_send_task"} <= set(routes)
    for task, queue in routes.items():
        assert queue in consumed["worker-payments"] | consumed["worker-mail"], f"{task} -> {queue}: no worker reads it"
    assert consumed["worker-mail"] == {"mail"}
    assert routes["apps.payments.tasks.drain_webhook_events_task"] in consumed["worker-payments"]
    assert {queue for task, queue in routes.items() if task.startswith("apps.mail.")} == {"mail"}
    assert not {queue for task, queue in routes.items() if task.startswith("apps.payments.")} & {"mail"}


def test_a_worker_started_without_queues_consumes_them_all():
    processes = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())

    assert _queues_consumed(processes["worker"].split()) == {"webhooks", "mirror", "payments", "mail"}
