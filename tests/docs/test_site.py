"""The docs site builds with `mkdocs build --strict` (every page in the nav, every link and anchor found) and,
built, fetches nothing from another host: `make docs` serves it offline."""

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

# What a browser loads by itself when it shows a page: a script, a stylesheet, a font, an image, a frame.
FETCHED = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "embed": ("src",),
    "object": ("data",),
}
FETCHED_LINKS = {"stylesheet", "icon", "preload", "prefetch", "preconnect", "dns-prefetch", "modulepreload", "manifest"}
ELSEWHERE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
KNOWN_HOSTS = re.compile(r"fonts\.googleapis|fonts\.gstatic|cdn\.jsdelivr|unpkg\.com|cdnjs|googletagmanager")


class FetchedElsewhere(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        names = FETCHED.get(tag, ())
        if tag == "link" and FETCHED_LINKS & set((attrs.get("rel") or "").lower().split()):
            names = ("href",)
        for name in names:
            if ELSEWHERE.match(attrs.get(name) or ""):
                self.found.append(f"<{tag} {name}={attrs[name]!r}>")
        # Material's bundle fetches mermaid from unpkg.com for a diagram: the docs draw theirs as text.
        if "mermaid" in (attrs.get("class") or "").split():
            self.found.append(f"<{tag} class=mermaid> (Material loads mermaid from unpkg.com)")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


@pytest.mark.integration  # builds the site with mkdocs
def test_the_site_builds_strictly_and_every_page_is_in_it(site):
    missing = []
    for page in (ROOT / "docs").rglob("*.md"):
        name = page.relative_to(ROOT / "docs").with_suffix("")
        built = site / (name.parent if name.name == "index" else name) / "index.html"
        if not built.exists():
            missing.append(str(page.relative_to(ROOT)))

    assert missing == []


@pytest.mark.integration  # builds the site with mkdocs
def test_the_built_site_fetches_nothing_from_another_host(site):
    found = []
    for page in site.rglob("*.html"):
        parser = FetchedElsewhere()
        parser.feed(page.read_text())
        found += [f"{page.relative_to(site)}: {tag}" for tag in parser.found]
    for stylesheet in site.rglob("*.css"):
        text = stylesheet.read_text()
        found += [
            f"{stylesheet.relative_to(site)}: {match}"
            for match in re.findall(r"@import[^;]*|url\([^)]*\)", text)
            if ELSEWHERE.match(match.removeprefix("@import").strip(" '\"url(")) or KNOWN_HOSTS.search(match)
        ]

    assert found == [], "the docs would fetch from another host (mkdocs.yml: theme.font: false, no CDN):\n" + "\n".join(
        found
    )


def test_the_pages_name_no_font_or_script_host():
    config = (ROOT / "mkdocs.yml").read_text()

    assert re.search(r"^\s*font:\s*false\s*$", config, flags=re.MULTILINE), "mkdocs.yml: theme.font must be false"
    assert not KNOWN_HOSTS.search(config)
