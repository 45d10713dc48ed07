"""Which scene asset and STAC URLs the worker may open (scene events come from outside).

* the scheme must be one of ``TERRAWATCH_ASSET_SCHEMES`` (default ``file,http,https,s3``);
* ``http(s)`` hosts must resolve to public addresses: loopback, private, link-local (the
  169.254.169.254 metadata service) and reserved targets are refused unless the host or a network
  containing it is in ``TERRAWATCH_ASSET_ALLOW_HOSTS`` - the same guard as webhooks
  (:func:`terrawatch.alerting.ssrf.vet_host`);
* ``file://`` paths must lie under ``TERRAWATCH_ASSET_FILE_ROOTS`` (default: the state dir and the
  shared data dir). A path outside is refused with one reason whether or not it exists, so the DLQ
  is no file-existence oracle (the check is lexical after resolving symlinks; nothing is opened).
* the stack's own state is never an asset, whatever the roots say: inside the state dir only
  :data:`STATE_SCENE_DIRS` (``samples/``, ``scenes/``) may be opened; PostgreSQL's data and password
  files, logs, PIDs, Kafka/Ray/Triton state, secrets and the products are refused with the same reason.
* an allowance (``TERRAWATCH_ASSET_ALLOW_HOSTS``) without a port does not admit the stack's own
  service ports (:func:`terrawatch.alerting.ssrf.stack_ports`); name the port to reach one.

Checked in the pipeline before any reader opens the scene (an :class:`UnreadableAsset`, i.e. a DLQ
entry) and on ``terrawatch:resolve`` STAC URLs (an :class:`InvalidEvent`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from terrawatch.alerting.ssrf import AllowList, UnsafeTarget, parse_allow_list, vet_host
from terrawatch.domain.errors import UnreadableAsset
from terrawatch.settings import REPO_ROOT, Settings


# Folders of the state dir that hold scene files (the demo's samples; scenes an operator drops in).
STATE_SCENE_DIRS = ("samples", "scenes")
OUTSIDE_ROOTS = "asset path is outside the allowed file roots (TERRAWATCH_ASSET_FILE_ROOTS)"


def _shown(exc: Exception, limit: int = 160) -> str:
    """An error naming the caller's host as it may be stored and shown (``scenes.status_reason``, the DLQ):
    markup and control characters replaced, cut to ``limit`` characters (issue 25)."""
    text = "".join(ch if ch.isalnum() or ch in " .:-_'/[]%,;()" else "?" for ch in str(exc))
    return text if len(text) <= limit else text[:limit] + "…"


def default_roots(settings: Settings) -> list[Path]:
    shared = os.environ.get("TERRAWATCH_SHARED_DATA") or str(REPO_ROOT.parent / "shared" / "data")
    return [settings.state_dir, Path(shared)]


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True)
class AssetPolicy:
    schemes: frozenset[str]
    allow: AllowList
    roots: tuple[str, ...]
    state: str | None = None  # the stack's state dir (realpath): only STATE_SCENE_DIRS inside it are assets

    @classmethod
    def from_settings(cls, settings: Settings) -> AssetPolicy:
        schemes = frozenset(s.strip().lower() for s in settings.asset_schemes.split(",") if s.strip())
        roots = [Path(r.strip()) for r in settings.asset_file_roots.split(",") if r.strip()] or default_roots(settings)
        return cls(schemes, parse_allow_list(settings.asset_allow_hosts, settings),
                   tuple(os.path.realpath(r) for r in roots), os.path.realpath(settings.state_dir))

    def check(self, href: str, error: type[Exception] = UnreadableAsset) -> None:
        """Raise ``error`` unless ``href`` may be opened."""
        u = urlsplit(href)
        scheme = u.scheme.lower()
        if scheme not in self.schemes:
            raise error(f"asset scheme {scheme[:16]!r} is not allowed (TERRAWATCH_ASSET_SCHEMES: "
                        f"{', '.join(sorted(self.schemes))})")
        if scheme == "file":
            if u.netloc not in ("", "localhost"):
                raise error("file:// hrefs must name a local path")
            path = os.path.realpath(unquote(u.path))
            if not any(_under(path, r) for r in self.roots) or self._stack_state(path):
                raise error(OUTSIDE_ROOTS)
            return
        if scheme in ("http", "https"):
            if not u.hostname:
                raise error("asset URL has no host")
            if u.username or u.password:
                raise error("asset URL must not carry credentials")
            try:
                port = u.port or (443 if scheme == "https" else 80)
                vet_host(u.hostname, port, self.allow, "asset host")
            except UnsafeTarget as exc:
                raise error(f"{_shown(exc)}; allow it with TERRAWATCH_ASSET_ALLOW_HOSTS") from None
            except ValueError as exc:
                raise error(f"bad asset URL: {_shown(exc)}") from None

    def _stack_state(self, path: str) -> bool:
        """``path`` is inside the state dir but not in one of its scene folders."""
        if not self.state or not _under(path, self.state):
            return False
        return not any(_under(path, os.path.join(self.state, d)) and path != os.path.join(self.state, d)
                       for d in STATE_SCENE_DIRS)

    def check_scene(self, scene) -> None:
        """Every band href of a :class:`~terrawatch.domain.scene.Scene` (raises UnreadableAsset)."""
        for band in (*scene.bands, *scene.mask_bands):
            self.check(band.href)

    def check_url(self, url: str) -> None:
        """A STAC Item/search URL named by an event (raises InvalidEvent)."""
        from terrawatch.domain.errors import InvalidEvent

        self.check(url, InvalidEvent)
