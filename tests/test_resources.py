"""The cascade as a checksummed resource: sources in order, fall-through with reasons, hard checksum errors."""

from __future__ import annotations

import logging

import pytest
from animefaces import resources
from animefaces.resources import (
    CASCADE_SHA256,
    ChecksumMismatch,
    ResourceError,
    Source,
    SourceUnavailable,
    fetch_cascade,
    fetch_resource,
    local_source,
    sha256_bytes,
    url_source,
)


@pytest.fixture(scope="module")
def cascade_bytes(shared) -> bytes:
    return (shared / "cascade" / "lbpcascade_animeface.xml").read_bytes()


def test_checksum_file_matches_code(repo):
    line = (repo / "resources" / "checksums.sha256").read_text().split()
    assert line == [CASCADE_SHA256, resources.CASCADE_NAME]


def test_config_path_source_puts_verified_file(tmp_path, shared):
    dest = tmp_path / "res" / "lbpcascade_animeface.xml"
    out = fetch_cascade(dest, str(shared / "cascade" / "lbpcascade_animeface.xml"), kinds=["config"])
    assert out == dest
    assert sha256_bytes(dest.read_bytes()) == CASCADE_SHA256
    assert [p.name for p in dest.parent.iterdir()] == ["lbpcascade_animeface.xml"]  # no temp files left


def test_wrong_config_file_is_an_error_naming_both_hashes(tmp_path, cascade_bytes):
    bad = tmp_path / "bad.xml"
    bad.write_bytes(cascade_bytes[:-10] + b"<!-- x -->")
    dest = tmp_path / "out.xml"
    with pytest.raises(ChecksumMismatch) as err:
        fetch_cascade(dest, str(bad))  # would fall through to the network if this were not a hard error
    msg = str(err.value)
    assert "lbpcascade_animeface.xml" in msg or "out.xml" in msg
    assert str(bad) in msg
    assert CASCADE_SHA256 in msg and sha256_bytes(bad.read_bytes()) in msg
    assert not dest.exists()


def test_verify_names_file_expected_and_actual(tmp_path):
    f = tmp_path / "x.xml"
    f.write_bytes(b"not a cascade")
    with pytest.raises(ChecksumMismatch) as err:
        resources.verify(f)
    assert (
        str(f) in str(err.value)
        and CASCADE_SHA256 in str(err.value)
        and sha256_bytes(b"not a cascade") in str(err.value)
    )


def test_fall_through_with_logged_reasons(tmp_path, cascade_bytes, caplog):
    calls = []

    def offline():
        calls.append("offline")
        raise SourceUnavailable("no route to host")

    def tampered():
        calls.append("tampered")
        return cascade_bytes + b"\n"

    def good():
        calls.append("good")
        return cascade_bytes

    sources = [Source("offline", offline), Source("tampered", tampered), Source("good", good), Source("never", offline)]
    dest = tmp_path / "c.xml"
    with caplog.at_level(logging.WARNING, logger="animefaces.resources"):
        fetch_resource(dest, CASCADE_SHA256, sources)
    assert calls == ["offline", "tampered", "good"]
    assert dest.read_bytes() == cascade_bytes
    text = caplog.text
    assert "offline" in text and "no route to host" in text
    assert "tampered" in text and "sha256 mismatch" in text


def test_total_failure_lists_every_source(tmp_path):
    def down():
        raise SourceUnavailable("network unreachable")

    dest = tmp_path / "c.xml"
    with pytest.raises(ResourceError) as err:
        fetch_resource(
            dest,
            CASCADE_SHA256,
            [Source("first", down), Source("second", lambda: b"junk"), url_source("http://127.0.0.1:9/x.xml", 5)],
        )
    msg = str(err.value)
    assert "first: network unreachable" in msg
    assert "second" in msg and sha256_bytes(b"junk") in msg
    assert "http://127.0.0.1:9/x.xml" in msg and "download failed" in msg
    assert "crop.cascade_path" in msg
    assert not dest.exists()


def test_existing_good_file_is_kept_without_fetching(tmp_path, cascade_bytes):
    dest = tmp_path / "c.xml"
    dest.write_bytes(cascade_bytes)

    def boom():
        raise AssertionError("must not fetch")

    fetch_resource(dest, CASCADE_SHA256, [Source("boom", boom)])
    assert dest.read_bytes() == cascade_bytes


def test_existing_bad_file_is_replaced(tmp_path, cascade_bytes):
    dest = tmp_path / "c.xml"
    dest.write_bytes(b"stale")
    fetch_resource(dest, CASCADE_SHA256, [Source("good", lambda: cascade_bytes)])
    assert dest.read_bytes() == cascade_bytes


def test_missing_config_path_falls_through(tmp_path):
    with pytest.raises(SourceUnavailable, match="crop.cascade_path"):
        local_source(tmp_path / "nope.xml").fetch()


def test_cli_reports_failure(tmp_path, capsys):
    rc = resources.main(
        ["--dest", str(tmp_path / "c.xml"), "--cascade-path", str(tmp_path / "nope.xml"), "--sources", "config"]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "nope.xml does not exist" in err and "sources tried" in err


def test_cli_config_path_via_params(tmp_path, shared):
    import json

    params = json.dumps({"cascade_path": str(shared / "cascade" / "lbpcascade_animeface.xml")})
    rc = resources.main(["--dest", str(tmp_path / "c.xml"), "--params", params, "--sources", "config"])
    assert rc == 0
    resources.verify(tmp_path / "c.xml")


@pytest.mark.slow
def test_pypi_wheel_source_for_real(tmp_path):
    """Downloads danbooru-utility==0.1.20 with pip (not installed) and extracts the cascade from the wheel."""
    dest = tmp_path / "lbpcascade_animeface.xml"
    rc = resources.main(["--dest", str(dest), "--sources", "pypi"])
    assert rc == 0
    resources.verify(dest)
