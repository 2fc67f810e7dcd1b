"""docker-compose.yml and the Procfile are documentation that runs: keep them true to the code."""

import shutil
import subprocess
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


def test_compose_runs_the_whole_stack():
    services = _compose()["services"]

    assert {"postgres", "redis", "web", "worker", "beat", "stripe-emulator"} <= set(services)
    assert services["stripe-emulator"]["command"][:3] == ["python", "-m", "tools.stripe_emulator"]
    assert services["web"]["environment"]["STRIPE_API_BASE"].endswith("stripe-emulator:12111}")
    assert services["web"]["command"][:2] == ["gunicorn", "config.wsgi"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "config", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    for name in ("web", "worker", "beat"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert environment["CELERY_BROKER_URL"].startswith("redis://")
        assert environment["EMAIL_URL"] == "${EMAIL_URL:-smtp://mailpit:1025}"


def test_compose_catches_mail_in_a_mail_catcher_with_a_web_ui():
    services = _compose()["services"]

    assert services["mailpit"]["image"].startswith("axllent/mailpit:v")
    assert "8025:8025" in services["mailpit"]["ports"]


def test_procfile_starts_web_worker_and_beat():
    processes = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())

    assert set(processes) == {"web", "worker", "beat"}
    assert processes["web"].startswith("gunicorn config.wsgi")
    assert processes["worker"].startswith("celery -A config worker")
    assert processes["beat"].startswith("celery -A config beat")


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.mark.skipif(_compose_command() is None, reason="needs docker compose (or docker-compose) to parse the file")
def test_compose_file_is_valid():
    result = subprocess.run(
        [*_compose_command(), "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
