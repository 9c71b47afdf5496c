"""MkDocs hook: the package's docstrings use Sphinx roles (:class:`Clock`); show them as code.

mkdocstrings renders a docstring's ``:class:`Clock``` as the text ``:class:`` followed by the
code span; this drops the role prefix so the API pages read ``Clock``. Docs build only.
"""

from __future__ import annotations

import re

_ROLE_BEFORE_CODE = re.compile(r":(?:class|meth|func|mod|data|attr|obj|exc|const):(?=<code>)")


def on_page_content(html: str, **_: object) -> str:
    return _ROLE_BEFORE_CODE.sub("", html)
