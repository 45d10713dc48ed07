"""Which scene asset and STAC URLs the worker may open (scene events come from outside).

* the scheme must be one of ``TERRAWATCH_ASSET_SCHEMES`` (default ``file,http,https,s3``);
* ``http(s)`` hosts must resolve to public addresses: loopback, private, link-local (the
  169.254.169.254 metadata service) and reserved targets are refused unless the host or a network
  containing it is in ``TERRAWATCH_ASSET_ALLOW_HOSTS`` - the same guard as webhooks
  (:func:`terrawatch.alerting.ssrf.vet_host`);
* ``file://`` paths must lie under ``TERRAWATCH_ASSET_FILE_ROOTS`` (default: the state dir and the
  shared data dir). A path outside is refused with one reason whether or not it exists, so the DLQ
  is no file-existence oracle (the check is lexical after resolving symlinks; nothing is opened).

Checked in the pipeline before any reader opens the scene (an :class:`UnreadableAsset`, i.e. a DLQ
entry) and on ``terrawatch:resolve`` STAC URLs (an :class:`InvalidEvent`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from terrawatch.alerting.ssrf import UnsafeTarget, parse_allow_list, vet_host
from terrawatch.domain.errors import UnreadableAsset
from terrawatch.settings import REPO_ROOT, Settings


def default_roots(settings: Settings) -> list[Path]:
    shared = os.environ.get("TERRAWATCH_SHARED_DATA") or str(REPO_ROOT.parent / "shared" / "data")
    return [settings.state_dir, Path(shared)]


@dataclass(frozen=True)
class AssetPolicy:
    schemes: frozenset[str]
    allow: tuple
    roots: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> AssetPolicy:
        schemes = frozenset(s.strip().lower() for s in settings.asset_schemes.split(",") if s.strip())
        roots = [Path(r.strip()) for r in settings.asset_file_roots.split(",") if r.strip()] or default_roots(settings)
        return cls(schemes, tuple(parse_allow_list(settings.asset_allow_hosts)),
                   tuple(os.path.realpath(r) for r in roots))

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
            if not any(path == r or path.startswith(r.rstrip("/") + "/") for r in self.roots):
                raise error("asset path is outside the allowed file roots (TERRAWATCH_ASSET_FILE_ROOTS)")
            return
        if scheme in ("http", "https"):
            if not u.hostname:
                raise error("asset URL has no host")
            if u.username or u.password:
                raise error("asset URL must not carry credentials")
            try:
                port = u.port or (443 if scheme == "https" else 80)
                vet_host(u.hostname, port, list(self.allow), "asset host")
            except UnsafeTarget as exc:
                raise error(f"{exc}; allow it with TERRAWATCH_ASSET_ALLOW_HOSTS") from None
            except ValueError as exc:
                raise error(f"bad asset URL: {exc}") from None

    def check_scene(self, scene) -> None:
        """Every band href of a :class:`~terrawatch.domain.scene.Scene` (raises UnreadableAsset)."""
        for band in (*scene.bands, *scene.mask_bands):
            self.check(band.href)

    def check_url(self, url: str) -> None:
        """A STAC Item/search URL named by an event (raises InvalidEvent)."""
        from terrawatch.domain.errors import InvalidEvent

        self.check(url, InvalidEvent)
