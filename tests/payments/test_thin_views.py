"""Views stay thin: every `api.py` reads through selectors and writes through services, and leaves refusals to
`config.api_conventions` (no ORM calls, no try/except)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Names no view has a reason to touch but a queryset or a model instance (`update`, `save` are also dicts' and
# serializers', so they are left to review).
ORM_CALLS = {"objects", "filter", "exclude", "refresh_from_db", "select_for_update", "get_or_create"}


def _offences(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Try):
            found.append(f"line {node.lineno}: try/except")
        elif isinstance(node, ast.Attribute) and node.attr in ORM_CALLS:
            found.append(f"line {node.lineno}: .{node.attr}")
    return sorted(found, key=lambda offence: int(offence.split()[1].rstrip(":")))


@pytest.mark.parametrize(
    "api",
    sorted([*ROOT.glob("apps/*/api.py"), *ROOT.glob("apps/*/*/api.py")]),
    ids=lambda path: str(path.parent.relative_to(ROOT / "apps")),
)
def test_views_hold_no_orm_and_no_try(api):
    assert _offences(api.read_text()) == []


def test_the_check_sees_what_it_forbids():
    view = (
        "def retry(self, request, pk=None):\n"
        "    record.refresh_from_db()\n"
        "    try:\n"
        "        return Order.objects.filter(pk=pk)\n"
        "    except LookupError:\n"
        "        pass\n"
    )
    assert _offences(view) == ["line 2: .refresh_from_db", "line 3: try/except", "line 4: .filter", "line 4: .objects"]
