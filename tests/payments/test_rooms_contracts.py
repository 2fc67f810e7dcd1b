"""The import contract that keeps payments' gateway the one door to Stripe names every other part of payments,
so a module added later is forbidden to it too (`lint-imports` enforces the contract itself)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAYMENTS = ROOT / "apps" / "payments"


def test_the_gateway_may_import_nothing_else_of_payments():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    [gateway] = [contract for contract in contracts if contract.get("source_modules") == ["apps.payments.gateway"]]
    parts = {
        f"apps.payments.{path.stem}"
        for path in PAYMENTS.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }

    assert gateway["type"] == "forbidden"
    assert set(gateway["forbidden_modules"]) == parts - {"apps.payments.gateway"}
