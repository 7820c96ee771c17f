"""Sphinx configuration of facturflow's documentation site (`make docs`).

Sphinx with MyST rather than MkDocs: the pages stay Markdown (the README's dialect), autodoc reads
the docstrings of the installed package, and `-W` turns every broken link, anchor or reference into
a failed build. MkDocs' Material theme announced its end of life (May 2027) while MkDocs 2 breaks
its plugins; Sphinx, MyST and Furo are maintained and need no Node or network at build time.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facturflow import __version__  # noqa: E402

project = "facturflow"
author = "facturflow developers"
release = version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
myst_enable_extensions = ["colon_fence", "deflist"]
# `page.md#a-heading` links are checked against the headings of that page.
myst_heading_anchors = 4
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"facturflow {release}"
html_static_path: list[str] = []
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# A site that builds offline: no intersphinx inventories, no remote images.
suppress_warnings: list[str] = []
