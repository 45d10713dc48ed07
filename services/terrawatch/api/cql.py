"""CQL2 filters by allow-list (OGC API - Features Part 3), checked before tipg turns them into SQL.

tipg parses ``filter`` with cql2-rs and renders it as SQL text. cql2-rs accepts
*any* function name (``pg_sleep(1) IS NULL`` parses and becomes ``pg_sleep(1)``
in the WHERE clause), so a parse is not a check. Here the parsed CQL2-JSON tree
is walked and every node must be one of:

* an operator or function of a conformance class listed in :data:`CONFORMANCE`
  (and only those: the conformance page lists exactly these classes);
* ``{"property": name}`` with ``name`` a queryable of *this* collection (its
  columns, read from the database catalog, so views that gain columns gain
  queryables without a code change);
* a literal: string (<= 1000 chars), finite number (|x| <= 1e15), boolean,
  ``{"timestamp"}``, ``{"date"}``, ``{"interval"}``, ``{"bbox"}``, a GeoJSON
  geometry, or a list of literals (IN).

Operands are type-checked against the column type (a number against a text
column would be a database error, i.e. a 500), and the filter is bounded in
characters, nesting depth and node count. Everything else is a 400 naming the
offending function, property or literal. Same policy as pygeoapi/ldproxy: the
server declares which functions exist (ldproxy's ``/functions``, pygeoapi's
provider-level CQL support) and rejects the rest.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass

from terrawatch.api.errors import BadRequest

CONF = "http://www.opengis.net/spec/cql2/1.0/conf/"
# The CQL2 conformance classes implemented (cql2-rs renders them to SQL that PostGIS runs);
# `accenti` (accent-insensitive-comparison) is left out: cql2-rs emits strip_accents(), which
# PostgreSQL does not have. Arithmetic, arrays and functions are left out on purpose.
CONFORMANCE = [
    CONF + "cql2-text",
    CONF + "cql2-json",
    CONF + "basic-cql2",
    CONF + "advanced-comparison-operators",
    CONF + "case-insensitive-comparison",
    CONF + "basic-spatial-functions",
    CONF + "basic-spatial-functions-plus",
    CONF + "spatial-functions",
    CONF + "temporal-functions",
    CONF + "property-property",
]

LOGICAL = {"and", "or", "not"}
COMPARISON = {"=", "<>", "<", "<=", ">", ">="}
ADVANCED = {"like", "between", "in"}
SPATIAL = {"s_intersects", "s_equals", "s_disjoint", "s_touches", "s_within", "s_overlaps", "s_crosses",
           "s_contains"}
TEMPORAL = {"t_after", "t_before", "t_contains", "t_disjoint", "t_during", "t_equals", "t_finishedby",
            "t_finishes", "t_intersects", "t_meets", "t_metby", "t_overlappedby", "t_overlaps", "t_startedby",
            "t_starts"}
ALLOWED = LOGICAL | COMPARISON | ADVANCED | SPATIAL | TEMPORAL | {"isnull", "casei"}

MAX_DEPTH = 20
MAX_NODES = 1000
MAX_STRING = 1000
MAX_ABS_NUMBER = 1e15
MAX_LIST = 1000
MAX_COORDINATES = 10_000
GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
                  "GeometryCollection"}

NUMERIC_TYPES = {"smallint", "integer", "bigint", "decimal", "numeric", "real", "double precision", "float8",
                 "float4", "int2", "int4", "int8", "serial", "bigserial", "smallserial"}


def kind_of_column(pg_type: str) -> str:
    """A column's kind for type checks: number, text, time, bool, geometry, uuid or other."""
    t = pg_type.lower()
    if t.endswith("[]"):
        return "other"
    if t in NUMERIC_TYPES:
        return "number"
    if t in ("geometry", "geography"):
        return "geometry"
    if t in ("timestamp", "timestamptz", "date") or t.startswith("timestamp"):
        return "time"
    if t.startswith("bool"):
        return "bool"
    if t == "uuid":
        return "uuid"
    if t in ("text", "varchar", "character varying", "char", "character", "bpchar", "name", "citext"):
        return "text"
    return "other"


@dataclass
class _Walk:
    columns: dict[str, str]  # queryable name -> kind
    nodes: int = 0


def _fail(msg: str) -> BadRequest:
    return BadRequest(f"filter: {msg}")


def check_raw(raw: str, max_chars: int) -> None:
    """Bounds checked on the raw text before any parser sees it (length, bracket depth)."""
    if len(raw) > max_chars:
        raise _fail(f"{len(raw)} characters, at most {max_chars} allowed")
    depth = deepest = 0
    for ch in raw:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    # GeoJSON polygons nest 4 brackets deep inside their operator; allow that on top of MAX_DEPTH.
    if deepest > MAX_DEPTH + 6:
        raise _fail(f"nested {deepest} levels deep, at most {MAX_DEPTH} allowed")


def parse(raw: str, lang: str | None, max_chars: int) -> dict | bool:
    """CQL2-text or CQL2-JSON -> the CQL2-JSON tree (400 on anything cql2-rs cannot parse)."""
    from cql2 import Expr

    check_raw(raw, max_chars)
    if lang not in (None, "cql2-text", "cql2-json"):
        raise BadRequest(f"filter-lang {lang!r} is not supported; use cql2-text or cql2-json")
    try:
        source = json.loads(raw) if lang == "cql2-json" else raw
        return Expr(source).to_json()
    except Exception as exc:  # noqa: BLE001 - cql2 raises plain Exceptions for parse errors
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        lang_name = lang or "cql2-text"
        raise _fail(f"not valid {lang_name}: {first}") from None


def normalise(tree):
    """The tree as tipg should get it: ``bbox`` literals as GeoJSON polygons (EPSG:4326).

    cql2-rs renders a bbox as ``st_makeenvelope(...)`` without an SRID, which PostGIS refuses to
    compare with the 4326 columns; GeoJSON literals are rendered with SRID 4326.
    """
    if isinstance(tree, list):
        return [normalise(v) for v in tree]
    if isinstance(tree, dict):
        if set(tree) == {"interval"} and isinstance(tree["interval"], list):
            # cql2-rs renders interval bounds given as strings, not as {"timestamp"}/{"date"} objects.
            return {"interval": [b.get("timestamp", b.get("date")) if isinstance(b, dict) else b
                                 for b in tree["interval"]]}
        if set(tree) == {"bbox"}:
            b = tree["bbox"]
            minx, miny, maxx, maxy = (b[0], b[1], b[2], b[3]) if len(b) == 4 else (b[0], b[1], b[3], b[4])
            return {"type": "Polygon", "coordinates": [[[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy],
                                                        [minx, miny]]]}
        return {k: normalise(v) for k, v in tree.items()}
    return tree


def check(tree, columns: dict[str, str]) -> None:
    """Walk a CQL2-JSON tree; raise :class:`BadRequest` on the first node outside the allow-list.

    ``columns`` maps each queryable property of the collection to its PostgreSQL type.
    """
    walk = _Walk({name: kind_of_column(t) for name, t in columns.items()})
    if isinstance(tree, bool):
        return
    kind = _expr(tree, walk, 0)
    if kind != "bool":
        raise _fail("the filter must be a condition (true/false), not a value")


def _count(walk: _Walk, depth: int) -> None:
    walk.nodes += 1
    if walk.nodes > MAX_NODES:
        raise _fail(f"more than {MAX_NODES} nodes")
    if depth > MAX_DEPTH:
        raise _fail(f"nested more than {MAX_DEPTH} levels deep")


def _expr(node, walk: _Walk, depth: int) -> str:
    """The kind of a node (bool, number, text, time, geometry, uuid-text, list, null, other)."""
    _count(walk, depth)
    if isinstance(node, bool):
        return "bool"
    if node is None:
        return "null"
    if isinstance(node, (int, float)):
        if not math.isfinite(node) or abs(node) > MAX_ABS_NUMBER:
            raise _fail(f"number {str(node)[:40]} is out of range (finite, |x| <= {MAX_ABS_NUMBER:g})")
        return "number"
    if isinstance(node, str):
        if len(node) > MAX_STRING:
            raise _fail(f"a string literal of {len(node)} characters; at most {MAX_STRING} allowed")
        return "text"
    if isinstance(node, list):
        if len(node) > MAX_LIST:
            raise _fail(f"a list of {len(node)} values; at most {MAX_LIST} allowed")
        kinds = {_expr(v, walk, depth + 1) for v in node}
        if len(kinds) > 1:
            raise _fail("a list mixes value types")
        return "list:" + (kinds.pop() if kinds else "empty")
    if not isinstance(node, dict):
        raise _fail(f"unexpected element {type(node).__name__}")
    if "property" in node:
        name = node["property"]
        if not isinstance(name, str) or name not in walk.columns:
            shown = str(name)[:64]
            raise _fail(f"unknown property {shown!r}; queryables: {', '.join(sorted(walk.columns))}")
        return walk.columns[name]
    if "timestamp" in node or "date" in node:
        value = node.get("timestamp", node.get("date"))
        if not isinstance(value, str) or len(value) > 40:
            raise _fail("a timestamp/date literal must be an RFC 3339 string")
        _rfc3339(value)
        return "time"
    if "interval" in node:
        bounds = node["interval"]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise _fail("an interval needs two bounds")
        for b in bounds:
            # A bound is a literal: cql2-rs cannot render anything else (casei('x'), a property) and
            # raised a plain Exception inside tipg, a 500 (issue 25).
            if isinstance(b, dict) and set(b) in ({"timestamp"}, {"date"}):
                _expr(b, walk, depth + 1)
            elif not (isinstance(b, str) and (b == ".." or _rfc3339(b))):
                raise _fail("interval bounds must be RFC 3339 dates or timestamps or '..'")
        return "interval"
    if "bbox" in node:
        box = node["bbox"]
        if not (isinstance(box, list) and len(box) in (4, 6) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)):
            raise _fail("a bbox needs 4 or 6 finite numbers")
        return "geometry"
    if "type" in node:
        _geometry(node)
        return "geometry"
    if "op" in node:
        return _op(node, walk, depth)
    raise _fail(f"unexpected element with keys {sorted(node)[:5]}")


# cql2-rs renders dates and timestamps through a timestamp type that ends on 9999-12-30 (a later date
# raised inside tipg: a 500); years outside this range are refused with a message instead.
MIN_YEAR, MAX_YEAR = 1, 9998


def _rfc3339(value: str) -> bool:
    from ciso8601 import parse_datetime

    try:
        when = parse_datetime(value)
    except ValueError:
        raise _fail(f"{value[:40]!r} is not an RFC 3339 date or timestamp") from None
    if not MIN_YEAR <= when.year <= MAX_YEAR:
        raise _fail(f"{value[:40]!r} is out of range (years {MIN_YEAR:04d}-{MAX_YEAR})")
    return True


def renders(tree) -> None:
    """Render the checked tree to SQL as tipg will (cql2-rs): anything it cannot render is the filter's fault.

    A last line behind :func:`check`: cql2-rs raises plain ``Exception`` for values it cannot carry
    (integers beyond 128 bits, dates past its range, non-literal interval bounds), which tipg let
    through as a 500.
    """
    from cql2 import Expr

    if isinstance(tree, bool):
        return
    try:
        Expr(tree).to_sql()
    except Exception as exc:  # noqa: BLE001 - cql2 raises plain Exceptions
        first = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise _fail(f"cannot be evaluated: {first}") from None


def _geometry(node: dict) -> None:
    from shapely.geometry import shape

    if node.get("type") not in GEOMETRY_TYPES:
        raise _fail(f"geometry type {str(node.get('type'))[:32]!r} is not supported")
    count = [0]

    def coords(c) -> None:
        if isinstance(c, (int, float)) and not isinstance(c, bool):
            if not math.isfinite(c):
                raise _fail("geometry coordinates must be finite")
            count[0] += 1
            if count[0] > MAX_COORDINATES:
                raise _fail(f"a geometry with more than {MAX_COORDINATES} coordinates")
            return
        if not isinstance(c, list):
            raise _fail("malformed geometry coordinates")
        for x in c:
            coords(x)

    for g in node.get("geometries", []) if node["type"] == "GeometryCollection" else [node]:
        if not isinstance(g, dict):
            raise _fail("malformed geometry")
        coords(g.get("coordinates"))
    try:
        shape(node)
    except Exception:  # noqa: BLE001 - shapely raises several types for malformed geometries
        raise _fail(f"malformed {node['type']} geometry") from None


def _op(node: dict, walk: _Walk, depth: int) -> str:
    name = node.get("op")
    args = node.get("args", [])
    if not isinstance(name, str):
        raise _fail("an operator name must be a string")
    op = name.lower()
    if op not in ALLOWED:
        raise _fail(f"function or operator {name[:64]!r} is not allowed; allowed: "
                    f"{', '.join(sorted(ALLOWED))}")
    if not isinstance(args, list):
        raise _fail(f"{name}: arguments must be a list")
    kinds = [_expr(a, walk, depth + 1) for a in args]

    def arity(n: int) -> None:
        if len(args) != n:
            raise _fail(f"{name} takes {n} argument(s), got {len(args)}")

    if op in ("and", "or"):
        if len(args) < 2 or any(k != "bool" for k in kinds):
            raise _fail(f"{name} combines two or more conditions")
        return "bool"
    if op == "not":
        arity(1)
        if kinds[0] != "bool":
            raise _fail("not negates a condition")
        return "bool"
    if op == "isnull":
        arity(1)
        if not isinstance(args[0], dict) or "property" not in args[0]:
            raise _fail("IS NULL applies to a property")
        return "bool"
    if op == "casei":
        arity(1)
        if kinds[0] != "text":
            raise _fail("casei applies to a text property or string")
        return "text"
    if op in COMPARISON:
        arity(2)
        _comparable(name, args, kinds)
        return "bool"
    if op == "like":
        arity(2)
        if kinds != ["text", "text"] or not isinstance(args[1], (str, dict)):
            raise _fail("LIKE compares a text property with a string pattern")
        return "bool"
    if op == "between":
        arity(3)
        if kinds[0] not in ("number", "time") or any(k != kinds[0] for k in kinds[1:]):
            raise _fail("BETWEEN needs a number (or time) property and two bounds of the same type")
        return "bool"
    if op == "in":
        arity(2)
        if not isinstance(args[1], list):
            raise _fail("IN needs a list of values")
        item = kinds[1].split(":", 1)[1]
        if item != "empty":
            _comparable(name, [args[0], args[1][0]], [kinds[0], item])
        return "bool"
    if op in SPATIAL:
        arity(2)
        if kinds != ["geometry", "geometry"]:
            raise _fail(f"{name} compares a geometry property with a geometry")
        return "bool"
    if op in TEMPORAL:
        arity(2)
        if kinds[0] != "time" or kinds[1] not in ("time", "interval"):
            raise _fail(f"{name} compares a time property with a timestamp, date or interval")
        return "bool"
    raise _fail(f"{name} is not allowed")  # pragma: no cover - ALLOWED and the branches agree


def _comparable(name: str, args: list, kinds: list[str]) -> None:
    a, b = kinds
    if "geometry" in kinds or "interval" in kinds or any(k.startswith("list") for k in kinds):
        raise _fail(f"{name} cannot compare {a} with {b}")
    if a == "other" or b == "other":
        raise _fail(f"{name}: this property cannot be compared")
    if "null" in kinds:
        raise _fail(f"{name}: use IS NULL to test for null")
    if "uuid" in kinds:
        other = b if a == "uuid" else a
        literal = args[1] if a == "uuid" else args[0]
        if other == "uuid":
            return
        if other != "text" or not isinstance(literal, str):
            raise _fail(f"{name}: a uuid property compares with a uuid string")
        try:
            uuid.UUID(literal)
        except ValueError:
            raise _fail(f"{literal[:40]!r} is not a uuid") from None
        return
    if a != b:
        raise _fail(f"{name} cannot compare {a} with {b}")
