"""One conformance suite for the BlobStore contract, run on every backend (local folder, S3 on moto)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from _servers import create_bucket, free_port
from groundwork.errors import ConfigError, StoreError, UnsupportedURL
from groundwork.storage.blobs import BlobStore, open_blob_store
from groundwork.storage.local import TMP_PREFIX


@pytest.fixture
def blobs(blob_store_url: str) -> BlobStore:
    return open_blob_store(blob_store_url)


# --- the contract, on every backend -----------------------------------------------------
def test_is_a_blob_store_with_its_url(blobs: BlobStore, blob_store_url: str) -> None:
    assert isinstance(blobs, BlobStore)
    assert blobs.url == blob_store_url


def test_bytes_round_trip(blobs: BlobStore) -> None:
    blobs.put_bytes("ab/abc", b"hello\x00world")
    assert blobs.get_bytes("ab/abc") == b"hello\x00world"


def test_empty_object_round_trip(blobs: BlobStore, tmp_path: Path) -> None:
    blobs.put_bytes("e/empty", b"")
    assert blobs.exists("e/empty")
    assert blobs.get_bytes("e/empty") == b""
    blobs.get_file("e/empty", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b""


def test_file_round_trip_creates_destination_folders(blobs: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 1000)
    blobs.put_file("f/source", source)
    dest = tmp_path / "deep" / "er" / "copy.bin"
    blobs.get_file("f/source", dest)
    assert dest.read_bytes() == source.read_bytes()
    assert blobs.get_bytes("f/source") == source.read_bytes()


def test_exists(blobs: BlobStore) -> None:
    assert not blobs.exists("x/y")
    blobs.put_bytes("x/y", b"1")
    assert blobs.exists("x/y")
    assert not blobs.exists("x/yy")


def test_list_with_prefix(blobs: BlobStore) -> None:
    assert list(blobs.list()) == []
    for key in ["a/1", "a/2", "ab/3", "b/c/4"]:
        blobs.put_bytes(key, key.encode())
    assert sorted(blobs.list()) == ["a/1", "a/2", "ab/3", "b/c/4"]
    assert sorted(blobs.list("a/")) == ["a/1", "a/2"]
    assert sorted(blobs.list("a")) == ["a/1", "a/2", "ab/3"]
    assert sorted(blobs.list("b/c/")) == ["b/c/4"]
    assert list(blobs.list("zz/")) == []


def test_overwrite_replaces_and_leaves_no_temporary_objects(blobs: BlobStore, tmp_path: Path) -> None:
    blobs.put_bytes("k/v", b"first")
    blobs.put_bytes("k/v", b"second, longer")
    assert blobs.get_bytes("k/v") == b"second, longer"
    source = tmp_path / "third"
    source.write_bytes(b"third")
    blobs.put_file("k/v", source)
    assert blobs.get_bytes("k/v") == b"third"
    assert list(blobs.list()) == ["k/v"]


def test_missing_key_raises_key_error(blobs: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        blobs.get_bytes("no/such")
    dest = tmp_path / "dest"
    with pytest.raises(KeyError):
        blobs.get_file("no/such", dest)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind either


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "a/./b", f"a/{TMP_PREFIX}x"])
def test_unsafe_keys_are_refused(blobs: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        blobs.put_bytes(key, b"x")


# --- opening by URL --------------------------------------------------------------------
def test_unknown_scheme_is_unsupported_url() -> None:
    with pytest.raises(UnsupportedURL) as raised:
        open_blob_store("ftp://example/artifacts")
    assert "ftp://" in str(raised.value)
    assert raised.value.hint is not None and "s3://" in raised.value.hint


@pytest.mark.parametrize(
    ("url", "message"),
    [("s3://", "names no bucket"), ("s3://bucket/x?bogus=1", "unknown option 'bogus'")],
)
def test_bad_remote_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_blob_store(url)


def test_local_file_url_and_plain_path_are_the_same_folder(tmp_path: Path) -> None:
    open_blob_store(f"file://{tmp_path}/store").put_bytes("a/b", b"x")
    assert open_blob_store(str(tmp_path / "store")).get_bytes("a/b") == b"x"
    assert (tmp_path / "store" / "a" / "b").read_bytes() == b"x"


def test_local_folder_is_created_on_first_write_only(tmp_path: Path) -> None:
    store = open_blob_store(str(tmp_path / "later"))
    assert not store.exists("a/b")
    assert list(store.list()) == []
    assert not (tmp_path / "later").exists()
    store.put_bytes("a/b", b"x")
    assert (tmp_path / "later").is_dir()


def test_unwritable_local_folder_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = open_blob_store(str(blocker / "artifacts"))
    with pytest.raises(StoreError) as raised:
        store.put_bytes("a/b", b"x")
    message = str(raised.value)
    assert str(blocker / "artifacts") in message
    assert "\n" not in message


def test_memory_filesystem_writes_through_a_temporary_key(tmp_path: Path) -> None:
    store = open_blob_store(f"memory://gw-test-{uuid.uuid4().hex}/artifacts")
    store.put_bytes("a/b", b"one")
    store.put_bytes("a/b", b"two")
    source = tmp_path / "f"
    source.write_bytes(b"three")
    store.put_file("a/c", source)
    assert store.get_bytes("a/b") == b"two"
    assert list(store.list()) == ["a/b", "a/c"]
    with pytest.raises(KeyError):
        store.get_bytes("a/d")


# --- S3 specifics --------------------------------------------------------------------
@pytest.mark.s3
def test_s3_missing_bucket_is_a_store_error(s3_endpoint: str) -> None:
    store = open_blob_store(f"s3://gw-no-such-bucket-{uuid.uuid4().hex[:8]}/x?endpoint_url={s3_endpoint}")
    with pytest.raises(StoreError, match="does not exist") as raised:
        store.put_bytes("a/b", b"x")
    assert "\n" not in str(raised.value)
    with pytest.raises(StoreError, match="does not exist"):
        store.get_bytes("a/b")


@pytest.mark.s3
def test_s3_unreachable_endpoint_is_a_store_error() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = open_blob_store(f"s3://bucket/x?endpoint_url={endpoint}&max_attempts=1")
    with pytest.raises(StoreError, match="cannot use the artifact store") as raised:
        store.put_bytes("a/b", b"x")
    assert "\n" not in str(raised.value)
    assert "endpoint_url" not in str(raised.value)  # the query (which may hold secrets) is not echoed


@pytest.mark.s3
def test_s3_endpoint_from_aws_endpoint_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = create_bucket(s3_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    store = open_blob_store(f"s3://{bucket}/via-env")
    store.put_bytes("a/b", b"env")
    assert store.get_bytes("a/b") == b"env"
    explicit = open_blob_store(f"s3://{bucket}/via-env?endpoint_url={s3_endpoint}")
    assert list(explicit.list()) == ["a/b"]
