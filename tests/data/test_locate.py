"""Lookup order, the not-found message, sha256 verification and its per-process cache, the opt-in download."""

from __future__ import annotations

import hashlib
import io
import os
import urllib.request

import pytest

from wattless.data import _locate
from wattless.data._locate import candidate_folders, file_sha256, locate_files
from wattless.errors import DataError

FILES = ("a.gz", "b.gz")
URL = "https://example.invalid/set/"


def _fill(folder, files=FILES):
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        (folder / file).write_bytes(file.encode())
    return folder


def _locate_set(data_dir=None, sha256=None):
    return locate_files("set", FILES, data_dir=data_dir, sha256=sha256 or {}, base_url=URL)


def test_candidate_folders_follow_the_documented_order(isolated_lookup, monkeypatch):
    monkeypatch.setenv("WATTLESS_DATA", str(isolated_lookup / "env"))
    assert candidate_folders("set", isolated_lookup / "arg") == [
        isolated_lookup / "arg",
        isolated_lookup / "arg" / "set",
        isolated_lookup / "env" / "set",
        isolated_lookup / "cache" / "set",
        isolated_lookup / "system" / "set",
    ]


def test_data_dir_beats_env_beats_cache_beats_system(isolated_lookup, monkeypatch):
    tmp = isolated_lookup
    monkeypatch.setenv("WATTLESS_DATA", str(tmp / "env"))
    system = _fill(tmp / "system" / "set")
    assert _locate_set() == system
    cache = _fill(tmp / "cache" / "set")
    assert _locate_set() == cache
    env = _fill(tmp / "env" / "set")
    assert _locate_set() == env
    nested = _fill(tmp / "arg" / "set")
    assert _locate_set(data_dir=tmp / "arg") == nested
    assert _locate_set(data_dir=_fill(tmp / "flat")) == tmp / "flat"


def test_a_folder_missing_one_file_is_passed_over(isolated_lookup):
    _fill(isolated_lookup / "arg", files=FILES[:1])
    cache = _fill(isolated_lookup / "cache" / "set")
    assert _locate_set(data_dir=isolated_lookup / "arg") == cache


def test_not_found_names_set_files_folders_and_the_fix(isolated_lookup, monkeypatch):
    monkeypatch.setenv("WATTLESS_DATA", str(isolated_lookup / "env"))
    with pytest.raises(DataError) as error:
        _locate_set(data_dir=isolated_lookup / "arg")
    message = str(error.value)
    assert "'set'" in message and "WATTLESS_DATA" in message and "--data-dir" in message
    assert all(file in message for file in FILES)
    assert all(str(folder) in message for folder in candidate_folders("set", isolated_lookup / "arg"))
    assert "\n" not in message


def test_checksum_mismatch_names_file_and_both_hashes(isolated_lookup):
    folder = _fill(isolated_lookup / "arg")
    published = {"a.gz": "0" * 64}
    with pytest.raises(DataError) as error:
        _locate_set(data_dir=folder, sha256=published)
    actual = hashlib.sha256(b"a.gz").hexdigest()
    assert all(part in str(error.value) for part in (str(folder / "a.gz"), actual, "0" * 64))


def test_matching_checksums_pass(isolated_lookup):
    folder = _fill(isolated_lookup / "arg")
    published = {file: hashlib.sha256(file.encode()).hexdigest() for file in FILES}
    assert _locate_set(data_dir=folder, sha256=published) == folder


def test_hash_is_computed_once_per_file_version(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"one")
    misses = _locate._hash_file.cache_info().misses
    assert file_sha256(path) == file_sha256(path) == hashlib.sha256(b"one").hexdigest()
    assert _locate._hash_file.cache_info().misses == misses + 1
    path.write_bytes(b"three")
    os.utime(path, ns=(1, 1))
    assert file_sha256(path) == hashlib.sha256(b"three").hexdigest()


def _serve(monkeypatch, payloads):
    requested = []

    def fake_urlopen(url, timeout):
        requested.append(url)
        return io.BytesIO(payloads[url])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return requested


def test_download_only_when_allowed_then_verified_into_the_cache(isolated_lookup, monkeypatch):
    payloads = {URL + file: file.encode() for file in FILES}
    requested = _serve(monkeypatch, payloads)
    published = {file: hashlib.sha256(file.encode()).hexdigest() for file in FILES}
    with pytest.raises(DataError, match="WATTLESS_DOWNLOAD=1"):
        _locate_set(sha256=published)
    assert requested == []
    monkeypatch.setenv("WATTLESS_DOWNLOAD", "1")
    folder = _locate_set(sha256=published)
    assert folder == isolated_lookup / "cache" / "set"
    assert sorted(os.listdir(folder)) == sorted(FILES)  # no temp files left behind
    assert requested == [URL + file for file in FILES]


def test_download_with_wrong_checksum_writes_nothing(isolated_lookup, monkeypatch):
    _serve(monkeypatch, {URL + file: b"tampered" for file in FILES})
    monkeypatch.setenv("WATTLESS_DOWNLOAD", "1")
    with pytest.raises(DataError, match="does not match the published"):
        _locate_set(sha256={file: "0" * 64 for file in FILES})
    assert not (isolated_lookup / "cache" / "set" / "a.gz").exists()
