"""Local HTTP stand-ins for remote imagery services: files with Range support, a STAC API, Sentinel Hub.

Each is a real HTTP/1.1 server on 127.0.0.1 (random port) in a thread. It records
every request and counts the body bytes it sent, so tests can assert what went
over the wire. Response shapes follow the public APIs (STAC API 1.0 item-search;
Sentinel Hub OAuth, Catalog 1.0.0 and Process API); they are written here, not
recorded from the live services.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj, status: int = 200, **headers: str) -> Response:
        return cls(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **headers})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body or b"null")


Handler = Callable[[Request, re.Match], Response]


class StandIn:
    """A threaded HTTP server with regex routes, static files under ``/files/`` and injectable faults."""

    def __init__(self, files_root: Path | None = None) -> None:
        self.files_root = files_root
        self.routes: list[tuple[str, re.Pattern, Handler]] = []
        self.log: list[dict] = []  # method, path, range, status, sent
        self.faults: list[tuple[str, re.Pattern, list[Response]]] = []
        self._lock = threading.Lock()
        standin = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _serve(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                u = urlparse(self.path)
                req = Request(method, u.path, parse_qs(u.query), {k.lower(): v for k, v in self.headers.items()}, body)
                resp = standin._dispatch(req)
                payload = b"" if method == "HEAD" else resp.body
                self.send_response(resp.status)
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in resp.headers:
                    self.send_header("Content-Length", str(len(resp.body)))
                self.end_headers()
                self.wfile.write(payload)
                with standin._lock:
                    standin.log.append({"method": method, "path": u.path, "range": req.headers.get("range"),
                                        "status": resp.status, "sent": len(payload)})

            def do_GET(self) -> None:
                self._serve("GET")

            def do_HEAD(self) -> None:
                self._serve("HEAD")

            def do_POST(self) -> None:
                self._serve("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    def fail(self, method: str, pattern: str, *responses: Response) -> None:
        """Answer the next matching requests with ``responses`` (in order) before the real handler."""
        self.faults.append((method, re.compile(f"^{pattern}$"), list(responses)))

    def sent(self, path_prefix: str = "") -> int:
        with self._lock:
            return sum(r["sent"] for r in self.log if r["path"].startswith(path_prefix))

    def requests(self, method: str | None = None, path_prefix: str = "") -> list[dict]:
        with self._lock:
            return [r for r in self.log if (method is None or r["method"] == method)
                    and r["path"].startswith(path_prefix)]

    def _dispatch(self, req: Request) -> Response:
        with self._lock:
            for method, pat, queue in self.faults:
                if queue and method == req.method and pat.match(req.path):
                    return queue.pop(0)
        for method, pat, handler in self.routes:
            m = pat.match(req.path)
            if m and method in (req.method, "GET" if req.method == "HEAD" else None):
                try:
                    return handler(req, m)
                except Exception as exc:  # noqa: BLE001 - a handler bug is a 500, as on a real server
                    return Response.json({"error": f"{type(exc).__name__}: {exc}"}, 500)
        return Response.json({"code": "NotFound", "description": f"{req.method} {req.path}"}, 404)

    # Files with HTTP Range (RFC 9110 single byte ranges) -------------------------------------------------------
    def serve_files(self, prefix: str = "/files/") -> None:
        self.route("GET", re.escape(prefix) + r"(?P<rel>.+)", self._file)

    def _file(self, req: Request, m: re.Match) -> Response:
        root = self.files_root.resolve()
        path = (root / m.group("rel")).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return Response(404, b"not found", {"Content-Type": "text/plain"})
        size = path.stat().st_size
        rng = req.headers.get("range")
        base = {"Accept-Ranges": "bytes", "Content-Type": "image/tiff"}
        if req.method == "HEAD":
            return Response(200, b"", {**base, "Content-Length": str(size)})
        if not rng:
            return Response(200, path.read_bytes(), base)
        mm = _RANGE.match(rng.strip())
        if not mm or (not mm.group(1) and not mm.group(2)):
            return Response(200, path.read_bytes(), base)  # multi-range: a full 200 is allowed (and costly)
        if mm.group(1):
            start = int(mm.group(1))
            end = min(int(mm.group(2)) if mm.group(2) else size - 1, size - 1)
        else:
            start, end = max(size - int(mm.group(2)), 0), size - 1
        if start >= size:
            return Response(416, b"", {"Content-Range": f"bytes */{size}"})
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(end - start + 1)
        return Response(206, data, {**base, "Content-Range": f"bytes {start}-{end}/{size}"})

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- STAC API (item-search) ----------------------------------------------------------------------------------

class StacApi:
    """A static STAC API: landing page, conformance, collections' items and a paged ``/search`` (GET and POST)."""

    CONFORMS = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search",
                "https://api.stacspec.org/v1.0.0/ogcapi-features"]

    def __init__(self, standin: StandIn, prefix: str = "/stac") -> None:
        self.s = standin
        self.prefix = prefix
        self.items: dict[str, dict] = {}
        self.search_bodies: list[dict] = []
        p = re.escape(prefix)
        standin.route("GET", p + "/?", self._landing)
        standin.route("GET", p + "/conformance", lambda r, m: Response.json({"conformsTo": self.CONFORMS}))
        standin.route("GET", p + r"/collections/(?P<c>[^/]+)/items/(?P<id>[^/]+)", self._item)
        standin.route("POST", p + "/search", self._search)
        standin.route("GET", p + "/search", self._search)

    @property
    def url(self) -> str:
        return self.s.url + self.prefix

    def item_url(self, item_id: str) -> str:
        it = self.items[item_id]
        return f"{self.url}/collections/{it['collection']}/items/{item_id}"

    def add(self, item: dict) -> None:
        item = json.loads(json.dumps(item))
        item["links"] = [{"rel": "self", "href": f"{self.url}/collections/{item['collection']}/items/{item['id']}",
                          "type": "application/geo+json"},
                         {"rel": "collection", "href": f"{self.url}/collections/{item['collection']}"}]
        self.items[item["id"]] = item

    def _landing(self, req: Request, m) -> Response:
        return Response.json({
            "type": "Catalog", "id": "standin", "stac_version": "1.0.0", "description": "test stand-in",
            "conformsTo": self.CONFORMS,
            "links": [{"rel": "self", "href": self.url, "type": "application/json"},
                      {"rel": "root", "href": self.url, "type": "application/json"},
                      {"rel": "conformance", "href": f"{self.url}/conformance"},
                      {"rel": "search", "href": f"{self.url}/search", "type": "application/geo+json", "method": "GET"},
                      {"rel": "search", "href": f"{self.url}/search", "type": "application/geo+json",
                       "method": "POST"}]})

    def _item(self, req: Request, m) -> Response:
        it = self.items.get(m.group("id"))
        if it is None or it["collection"] != m.group("c"):
            return Response.json({"code": "NotFoundError", "description": "Item not found"}, 404)
        return Response.json(it, headers={"Content-Type": "application/geo+json"})

    def _search(self, req: Request, m) -> Response:
        if req.method == "POST":
            params = req.json() or {}
        else:
            params = {k: v[0] for k, v in req.query.items()}
            for k in ("collections", "ids"):
                if k in params:
                    params[k] = params[k].split(",")
            if "bbox" in params:
                params["bbox"] = [float(v) for v in params["bbox"].split(",")]
            params["limit"] = int(params.get("limit", 10))
        self.search_bodies.append(params)
        found = [it for it in self.items.values() if _matches(it, params)]
        found.sort(key=lambda it: (it["properties"]["datetime"], it["id"]))
        start = int(params.get("token", "0") or 0)
        limit = int(params.get("limit") or 10)
        page = found[start:start + limit]
        links = []
        if start + limit < len(found):
            body = {**params, "token": str(start + limit)}
            links.append({"rel": "next", "href": f"{self.url}/search", "method": "POST", "body": body,
                          "merge": False, "type": "application/geo+json"})
        return Response.json({"type": "FeatureCollection", "features": page, "links": links,
                              "numberMatched": len(found), "numberReturned": len(page)},
                             headers={"Content-Type": "application/geo+json"})


def _matches(item: dict, params: dict) -> bool:
    from shapely.geometry import box, shape

    if params.get("ids") and item["id"] not in params["ids"]:
        return False
    if params.get("collections") and item.get("collection") not in params["collections"]:
        return False
    if params.get("bbox") and not shape(item["geometry"]).intersects(box(*params["bbox"][:4])):
        return False
    if params.get("datetime"):
        start, _, end = str(params["datetime"]).partition("/")
        t = item["properties"]["datetime"]
        if not end:
            end = start
        if start not in ("", "..") and t < start:
            return False
        if end not in ("", "..") and t > end:
            return False
    return True


# --- Sentinel Hub (OAuth, Catalog 1.0.0, Process API) --------------------------------------------------------

def sh_pixel_value(band: int, x: np.ndarray, y: np.ndarray, float_out: bool) -> np.ndarray:
    """The stand-in's rendering: a value per band and pixel-centre coordinate (metres), checkable by tests."""
    ix, iy = np.floor(x / 10).astype(np.int64), np.floor(y / 10).astype(np.int64)
    if float_out:
        return (-5.0 - (ix % 17) - (iy % 13) - band).astype(np.float32)
    return (100 + (ix * 3 + iy * 7 + band * 11) % 9000).astype(np.uint16)


def _cql2_text(feature: dict, flt: str | None) -> bool:
    """The subset of CQL2 text terrawatch sends: ``prop < number`` terms joined by AND."""
    for term in filter(None, (t.strip() for t in (flt or "").split(" AND "))):
        m = re.fullmatch(r"([\w:]+)\s*(<|<=|>|>=|=)\s*([-\d.]+)", term)
        if not m:
            raise ValueError(f"unsupported filter term {term!r}")
        v, op, ref = feature["properties"].get(m.group(1)), m.group(2), float(m.group(3))
        if v is None or not {"<": v < ref, "<=": v <= ref, ">": v > ref, ">=": v >= ref, "=": v == ref}[op]:
            return False
    return True


class SentinelHubApi:
    """OAuth client-credentials token endpoint, Catalog ``/search`` and Process API returning GeoTIFF."""

    def __init__(self, standin: StandIn, client_id: str = "tw-client", client_secret: str = "tw-secret") -> None:
        self.s = standin
        self.client_id, self.client_secret = client_id, client_secret
        self.tokens: set[str] = set()
        self.token_forms: list[dict] = []
        self.catalog_bodies: list[dict] = []
        self.process_bodies: list[dict] = []
        self.features: dict[str, list[dict]] = {}  # collection id -> Catalog features
        self.page_cap = 2
        standin.route("POST", "/oauth/token", self._token)
        standin.route("POST", "/api/v1/catalog/1.0.0/search", self._catalog)
        standin.route("POST", "/api/v1/process", self._process)

    @property
    def token_url(self) -> str:
        return self.s.url + "/oauth/token"

    def _token(self, req: Request, m) -> Response:
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        self.token_forms.append(form)
        if form.get("grant_type") != "client_credentials":
            return Response.json({"error": "unsupported_grant_type"}, 400)
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return Response.json({"error": "invalid_client", "error_description": "Invalid client credentials"}, 401)
        token = secrets.token_hex(16)
        self.tokens.add(token)
        return Response.json({"access_token": token, "expires_in": 3600, "refresh_expires_in": 0,
                              "token_type": "Bearer", "not-before-policy": 0, "scope": "email profile"})

    def _authorized(self, req: Request) -> bool:
        auth = req.headers.get("authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in self.tokens

    def _catalog(self, req: Request, m) -> Response:
        if not self._authorized(req):
            return Response.json({"error": {"status": 401, "reason": "Unauthorized"}}, 401)
        body = req.json()
        self.catalog_bodies.append(body)
        found = [f for c in body.get("collections") or [] for f in self.features.get(c, [])
                 if _matches(f, {**body, "collections": None}) and _cql2_text(f, body.get("filter"))]
        # The service caps a page below the requested limit; clients follow context.next.
        start, limit = int(body.get("next") or 0), min(int(body.get("limit") or 10), self.page_cap)
        page = found[start:start + limit]
        ctx = {"limit": limit, "returned": len(page)}
        if start + limit < len(found):
            ctx["next"] = start + limit
        return Response.json({"type": "FeatureCollection", "features": page, "links": [], "context": ctx})

    def _process(self, req: Request, m) -> Response:
        import rasterio
        from rasterio.transform import from_bounds

        if not self._authorized(req):
            return Response.json({"error": {"status": 401, "reason": "Unauthorized",
                                            "message": "You are not authorized!"}}, 401)
        body = req.json()
        self.process_bodies.append(body)
        bounds = body["input"]["bounds"]
        minx, miny, maxx, maxy = bounds["bbox"]
        epsg = int(bounds["properties"]["crs"].rsplit("/", 1)[1])
        w, h = int(body["output"]["width"]), int(body["output"]["height"])
        ms = re.search(r"output:\s*\{\s*bands:\s*(\d+),\s*sampleType:\s*\"(\w+)\"", body["evalscript"])
        if not ms:
            return Response.json({"error": {"status": 400, "reason": "Bad Request",
                                            "message": "Failed to evaluate script"}}, 400)
        n, sample = int(ms.group(1)), ms.group(2)
        float_out = sample == "FLOAT32"
        t = from_bounds(minx, miny, maxx, maxy, w, h)
        cols, rows = np.meshgrid(np.arange(w), np.arange(h))
        x, y = t * (cols + 0.5, rows + 0.5)
        data = np.stack([sh_pixel_value(b, x, y, float_out) for b in range(n)])
        buf = io.BytesIO()
        with rasterio.MemoryFile() as mem:
            with mem.open(driver="GTiff", width=w, height=h, count=n, dtype="float32" if float_out else "uint16",
                          crs=f"EPSG:{epsg}", transform=t) as ds:
                ds.write(data)
            buf.write(mem.read())
        return Response(200, buf.getvalue(), {"Content-Type": "image/tiff",
                                              "x-processingunits-spent": f"{w * h * n / 512 / 512 / 3:.3f}"})

