"""URIs as text (batch_nst.uris): resolved, split, joined and redacted, no storage touched."""

import os

import pytest

from batch_nst import storage, uris
from batch_nst.errors import StorageError


@pytest.mark.parametrize("uri, base, expected", [
    ("art/a.png", "s3://b/jobs", "s3://b/jobs/art/a.png"),
    ("../styles/ink.jpg", "s3://b/jobs/", "s3://b/styles/ink.jpg"),
    ("a/../b.png", "memory://lib", "memory://lib/b.png"),
    ("x.png", "file:///data/lib", "file:///data/lib/x.png"),
    ("gs://other/x.png", "s3://b/jobs", "gs://other/x.png"),
    ("memory://lib/x.png", "/data", "memory://lib/x.png"),
    ("/data/../abs/x.png", "s3://b", "/abs/x.png"),
    ("art/../x.png", "/data/lib", "/data/lib/x.png"),
])
def test_resolve(uri, base, expected):
    assert uris.resolve(uri, base) == expected


def test_resolve_relative_to_a_relative_folder_or_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert uris.resolve("x.png") == str(tmp_path / "x.png")
    assert uris.resolve("../x.png", "lib/jobs") == str(tmp_path / "lib" / "x.png")


def test_resolve_refuses_to_climb_above_a_bucket():
    with pytest.raises(StorageError, match="climbs above"):
        uris.resolve("../../x.png", "s3://b")


@pytest.mark.parametrize("uri, expected", [
    ("s3://b/x/m.csv", "s3://b/x"),
    ("memory://lib/jobs/m.csv", "memory://lib/jobs"),
    ("s3://b/x/", "s3://b"),
    ("/data/lib/m.csv", "/data/lib"),
])
def test_parent(uri, expected):
    assert uris.parent(uri) == expected


def test_join_keeps_the_scheme_and_uses_os_path_for_local_folders(tmp_path):
    assert uris.join("s3://b/out", "images", "a.png") == "s3://b/out/images/a.png"
    assert uris.join("memory://out/", "runs", "r.json") == "memory://out/runs/r.json"
    assert uris.join(str(tmp_path), "metadata") == os.path.join(str(tmp_path), "metadata")


@pytest.mark.parametrize("uri, expected", [
    ("s3://KEY:SECRET@bucket/x", "s3://***@bucket/x"),
    ("s3://AKIA:se/cr+et@bucket/a@2x.png", "s3://***@bucket/a@2x.png"),
    ("s3://bucket/a@2x.png", "s3://bucket/a@2x.png"),
    ("https://h/x.png?X-Amz-Signature=abc&size=2&access_token=t0k", "https://h/x.png?X-Amz-Signature=***&size=2&access_token=***"),
    ("https://h/x?sv=1&sig=s1g", "https://h/x?sv=1&sig=***"),
    ("/plain/path.png", "/plain/path.png"),
])
def test_redact(uri, expected):
    assert uris.redact(uri) == expected


def test_split_tells_uris_from_local_paths_whose_double_colons_are_names():
    assert uris.split("s3://b/x.png") == ("s3://", "b/x.png") and uris.is_uri("memory://x")
    assert uris.split("/data/a::b.png") == ("", "/data/a::b.png") and not uris.is_uri("/data/a::b.png")


def test_scrub_removes_a_uri_s_secrets_from_any_text():
    text = "GET s3://KEY:SECRET@b/x?token=t0k failed: KEY denied, SECRET wrong, t0k expired"
    assert uris.scrub(text, "s3://KEY:SECRET@b/x?token=t0k") == "GET s3://***@b/x?token=*** failed: *** denied, *** wrong, *** expired"


def test_storage_still_offers_them_by_their_old_names():
    assert (storage.resolve, storage.parent, storage.join, storage.redact) == (uris.resolve, uris.parent, uris.join,
                                                                              uris.redact)
