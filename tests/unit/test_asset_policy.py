"""Scene asset / STAC URLs an event may make the worker open (issue 12): schemes, SSRF, file roots."""

from __future__ import annotations

import pytest

from terrawatch.domain.errors import InvalidEvent, UnreadableAsset
from terrawatch.imagery.asset_policy import AssetPolicy
from terrawatch.settings import Settings


def policy(tmp_path, **kw) -> AssetPolicy:
    return AssetPolicy.from_settings(Settings(state_dir=tmp_path / "state", asset_file_roots=str(tmp_path / "data"),
                                              **kw))


@pytest.mark.parametrize("href", [
    "http://127.0.0.1:8080/a.tif", "http://localhost/a.tif", "https://10.0.0.5/a.tif", "http://169.254.169.254/latest/",
    "http://[::1]/a.tif", "http://[::ffff:127.0.0.1]/a.tif", "http://192.168.1.1/a.tif", "http://0.0.0.0/a.tif",
])
def test_loopback_private_and_link_local_hosts_are_refused(tmp_path, href):
    with pytest.raises(UnreadableAsset, match="non-public address"):
        policy(tmp_path).check(href)


def test_allow_listed_hosts_schemes_and_credentials(tmp_path):
    p = policy(tmp_path, asset_allow_hosts="127.0.0.1,10.0.0.0/8")
    p.check("http://127.0.0.1:8080/a.tif")
    p.check("https://10.1.2.3/a.tif")
    with pytest.raises(UnreadableAsset, match="non-public"):
        p.check("http://192.168.1.1/a.tif")
    with pytest.raises(UnreadableAsset, match="scheme 'ftp'"):
        p.check("ftp://example.org/a.tif")
    with pytest.raises(UnreadableAsset, match="credentials"):
        p.check("http://user:pw@127.0.0.1/a.tif")
    only_https = policy(tmp_path, asset_schemes="https")
    with pytest.raises(UnreadableAsset, match="scheme 'file'"):
        only_https.check((tmp_path / "data" / "a.tif").as_uri())


def test_file_hrefs_only_under_roots_and_no_existence_oracle(tmp_path):
    (tmp_path / "data").mkdir()
    inside = tmp_path / "data" / "a.tif"
    inside.write_bytes(b"x")
    p = policy(tmp_path)
    p.check(inside.as_uri())
    p.check((tmp_path / "data" / "missing.tif").as_uri())  # inside: the reader reports it
    outside_exists, outside_missing = tmp_path / "secret.txt", tmp_path / "nope.txt"
    outside_exists.write_text("s")
    reasons = set()
    for href in (outside_exists.as_uri(), outside_missing.as_uri(), "file:///etc/passwd", "file:///etc/no-such-file",
                 (tmp_path / "data" / ".." / "secret.txt").as_uri()):
        with pytest.raises(UnreadableAsset) as err:
            p.check(href)
        reasons.add(err.value.reason)
    assert reasons == {"asset path is outside the allowed file roots (TERRAWATCH_ASSET_FILE_ROOTS)"}
    link = tmp_path / "data" / "link.tif"
    link.symlink_to(outside_exists)
    with pytest.raises(UnreadableAsset, match="outside the allowed file roots"):
        p.check(link.as_uri())


def test_default_roots_are_the_state_dir_and_shared_data(tmp_path):
    p = AssetPolicy.from_settings(Settings(state_dir=tmp_path))
    p.check((tmp_path / "samples" / "x.tif").as_uri())
    with pytest.raises(UnreadableAsset):
        p.check("file:///etc/hostname")


def test_stac_references_are_vetted_before_any_fetch(tmp_path):
    from terrawatch.imagery.stac import resolve_reference

    with pytest.raises(InvalidEvent, match="non-public"):
        resolve_reference({"item": "http://169.254.169.254/latest/meta-data"}, policy(tmp_path).check_url)


@pytest.mark.parametrize("rel", ["pg/data/PG_VERSION", "pg/data/global/pg_control", "logs/api.log", "pids/worker.pid",
                                 "kafka/meta.properties", "stack.json", "products/s1/flood.tif", "secrets/pg.pass",
                                 "samples/../logs/api.log", "samples", "."])
def test_the_stacks_own_state_is_never_an_asset_even_under_a_root(tmp_path, rel):
    """Issue 25 finding 7: the roots used to include the whole state dir (PostgreSQL files and logs passed)."""
    state = tmp_path / "state"
    (state / "logs").mkdir(parents=True)
    (state / "logs" / "api.log").write_text("x")
    for p in (AssetPolicy.from_settings(Settings(state_dir=state)),  # default roots: the state dir
              AssetPolicy.from_settings(Settings(state_dir=state, asset_file_roots=f"{tmp_path},{state}"))):
        with pytest.raises(UnreadableAsset) as err:
            p.check((state / rel).as_uri() if rel != "samples/../logs/api.log" else f"file://{state}/{rel}")
        assert err.value.reason == "asset path is outside the allowed file roots (TERRAWATCH_ASSET_FILE_ROOTS)"


def test_scene_folders_of_the_state_dir_stay_assets(tmp_path):
    state = tmp_path / "state"
    p = AssetPolicy.from_settings(Settings(state_dir=state, asset_file_roots=f"{tmp_path}"))
    p.check((state / "samples" / "s2" / "B04.tif").as_uri())
    p.check((state / "scenes" / "x.tif").as_uri())
    p.check((tmp_path / "elsewhere" / "x.tif").as_uri())  # under the root, outside the state


def test_asset_allowances_do_not_open_the_stacks_own_ports(tmp_path):
    s = Settings(state_dir=tmp_path, asset_allow_hosts="127.0.0.1")
    p = AssetPolicy.from_settings(s)
    p.check("http://127.0.0.1:9000/a.tif")
    with pytest.raises(UnreadableAsset, match="stack's own services"):
        p.check(f"http://127.0.0.1:{s.triton_http_port}/v2/models")
