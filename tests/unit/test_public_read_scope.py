"""Public read covers exactly the map layers, and the docs say so (issue 25 finding 7): the route table,
docs/security.md and docs/api.md agree on /ogc, /tiles, /raster and /stac."""

from __future__ import annotations

import re

from terrawatch.api import roles
from terrawatch.settings import REPO_ROOT


def _prefix(template: str) -> str:
    return "/" + template.strip("/").split("/")[0].split(".")[0]


def test_layers_routes_are_exactly_the_public_read_prefixes():
    layers = {_prefix(t) for (_m, t), role in roles.ROUTE_ROLES.items() if role == roles.LAYERS}
    assert layers == set(roles.PUBLIC_READ_PREFIXES)
    for (_m, t), role in roles.ROUTE_ROLES.items():  # nothing else under those prefixes is weaker or public
        if _prefix(t) in roles.PUBLIC_READ_PREFIXES:
            assert role == roles.LAYERS, t
    assert roles.effective(roles.LAYERS, True) == roles.NONE and roles.effective(roles.LAYERS, False) == roles.VIEWER


def test_security_md_lists_what_public_read_opens():
    doc = (REPO_ROOT / "docs" / "security.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| anyone, when `TERRAWATCH_API_PUBLIC_READ=true`"))
    named = set(re.findall(r"`(/[a-z]+)/", row))
    assert named == set(roles.PUBLIC_READ_PREFIXES), row


def test_api_md_rows_of_public_routes_say_none_with_public_read():
    doc = (REPO_ROOT / "docs" / "api.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| `/")]
    for line in rows:
        first = re.match(r"\| `(/[a-z]*)", line).group(1)
        public = line.rstrip().endswith("(none with public read) |")
        assert public == (first in roles.PUBLIC_READ_PREFIXES), line
