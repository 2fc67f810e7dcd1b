"""The docs describe the code as it is: every module the architecture page's table and its layout of
`apps/payments/` name in a slice of payments exists there, and every slice is described; the README's
examples are the getting-started page's, which tests/docs/test_examples.py runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAYMENTS = ROOT / "apps" / "payments"
SLICES = sorted(
    path.name
    for path in PAYMENTS.iterdir()
    if (path / "__init__.py").exists() and path.name not in ("management", "migrations")
)
MODULE = re.compile(r"(?<![\w/.])([a-z_]+(?:/[a-z_]+)*\.py)\b")
ARCHITECTURE = ROOT / "docs" / "architecture.md"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)


def _architecture_layout() -> dict[str, set[str]]:
    """The modules the architecture page's layout of `apps/payments/` names, by slice."""
    page = ARCHITECTURE.read_text()
    block = page[page.index("apps/payments/\n") : page.index("```", page.index("apps/payments/\n"))]
    named: dict[str, set[str]] = {}
    current = None
    for line in block.splitlines():
        if match := re.match(r"  (\w+)/ ", line):
            current = match[1]
        if current:
            named.setdefault(current, set()).update(MODULE.findall(line))
    return named


def _architecture_table() -> dict[str, set[str]]:
    page = ARCHITECTURE.read_text()
    return {
        match[1]: set(MODULE.findall(match[2]))
        for match in re.finditer(r"^\| `(\w+)` \|[^|]*\|(.*)\|$", page, flags=re.MULTILINE)
    }


def test_the_architecture_layout_names_every_slice_and_only_modules_that_exist():
    named = _architecture_layout()

    assert sorted(named) == SLICES
    missing = [f"{name}/{module}" for name, modules in named.items() for module in modules]
    assert [path for path in missing if not (PAYMENTS / path).exists()] == []


def test_the_architecture_page_names_every_slice_and_only_modules_that_exist():
    named = _architecture_table()

    assert sorted(named) == SLICES
    missing = [f"{name}/{module}" for name, modules in named.items() for module in modules]
    assert [path for path in missing if not (PAYMENTS / path).exists()] == []


def test_the_readme_examples_are_the_getting_started_pages_which_are_run():
    readme = SH_BLOCK.findall((ROOT / "README.md").read_text())
    getting_started = (ROOT / "docs" / "getting-started.md").read_text()

    assert readme
    assert [block for block in readme if block not in getting_started] == []
