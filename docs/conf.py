"""Sphinx configuration: the README's sections as pages, and the API from the docstrings.

The pages under ``_readme/`` are made from ../README.md at every build (one page per ``##``
section, in the README's order), so the README stays the one source of the user guide.
Links that point into the repository rather than to a page (``deploy/local/``,
``bench/README.md``) become plain text there: the built docs do not ship those files.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import daskfarm  # noqa: E402

project = "daskfarm"
author = "daskfarm developers"
copyright = "daskfarm developers"
release = daskfarm.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "numpydoc",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_readme/intro.md"]  # intro.md: included by index.md
myst_heading_anchors = 3
autodoc_typehints = "none"  # numpydoc's Parameters sections say it, in words
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # distributed's plugin docstrings link to its own docs
autodoc_default_options = {"members": True}  # inheritance: shown for the errors only
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# the Dask projects' theme (the docs extra); Sphinx's own without it
html_theme = ("pydata_sphinx_theme" if importlib.util.find_spec("pydata_sphinx_theme")
              else "alabaster")
html_title = "daskfarm"
html_static_path: list[str] = []

# -- the README as pages ----------------------------------------------------------------

README_DIR = HERE / "_readme"
#: README sections that are about developing daskfarm, not using it: left out of the guide
SKIP = {"Two commands", "Development"}


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _relink(text: str, slugs: dict[str, str]) -> str:
    """Point the README's links at pages of this site (or make them plain text)."""

    def replace(match: re.Match) -> str:
        bang, label, target = match.group(1), match.group(2), match.group(3)
        if re.match(r"[a-z]+://", target):
            return match.group(0)
        if target.startswith("#"):
            page = slugs.get(target[1:])
            return f"[{label}]({page}.md)" if page else label
        if target.startswith("docs/"):  # an image or a page of this site
            return f"{bang}[{label}](../{target[len('docs/'):]})"
        return label  # a file of the repository

    return re.sub(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)", replace, text)


def readme_pages() -> list[str]:
    """Write one page per README section; return their names in the README's order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    intro, sections = parts[0], list(zip(parts[1::2], parts[2::2]))
    slugs = {slug(title): slug(title) for title, _ in sections}
    README_DIR.mkdir(exist_ok=True)
    names = []
    for title, body in sections:
        if title.strip() in SKIP:
            continue
        name = slug(title)
        # the section is the page's title: its ### subsections become the page's ##
        body = re.sub(r"^#(#{2,5}) ", r"\1 ", body, flags=re.M)
        page = f"# {title.strip()}\n{_relink(body, slugs)}"
        path = README_DIR / f"{name}.md"
        if not path.exists() or path.read_text(encoding="utf-8") != page:
            path.write_text(page, encoding="utf-8")  # unchanged pages keep their mtime
        names.append(name)
    for stale in README_DIR.glob("*.md"):
        if stale.stem not in names and stale.stem != "intro":
            stale.unlink()
    intro_body = intro.split("\n", 1)[1] if intro.startswith("# ") else intro
    intro_page = README_DIR / "intro.md"
    text = f"% made from README.md by conf.py\n{_relink(intro_body, slugs)}"
    if not intro_page.exists() or intro_page.read_text(encoding="utf-8") != text:
        intro_page.write_text(text, encoding="utf-8")
    return names


_PAGES = readme_pages()
#: the line of index.md's toctree that stands for the README's pages
PLACEHOLDER = "README-PAGES"


def _fill_toctree(app, docname: str, source: list[str]) -> None:
    if docname == "index":
        source[0] = source[0].replace(PLACEHOLDER, "\n".join(f"_readme/{n}" for n in _PAGES))


def setup(app):
    app.connect("source-read", _fill_toctree)
