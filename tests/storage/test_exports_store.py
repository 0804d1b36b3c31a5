"""Export rows (migration 0003) on SQLite and a real PostgreSQL: recorded with their bundle artifact, read back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from groundwork.storage.metadata import SqlMetadataStore
from groundwork.storage.registry import ArtifactRow, SqlRegistryStore


@pytest.fixture
def store(store_url: str) -> Iterator[SqlMetadataStore]:
    s = SqlMetadataStore(store_url)
    yield s
    s.close()


def test_exports_are_recorded_per_version_and_found_by_bundle(store: SqlMetadataStore) -> None:
    reg = SqlRegistryStore(store)
    model = ArtifactRow("a" * 64, 10, True, 2)
    reg.create_version("digits", artifact=model, flavor="pytorch")
    reg.create_version("digits", artifact=model, flavor="pytorch")
    bundle = ArtifactRow("b" * 64, 15_000_000, True, 11)
    verification = {"passed": True, "agreement": {"measure": "label", "value": 1.0}, "size": {"total_bytes": 15_000_000}}
    first = reg.add_export("digits", 1, target="web", precision="fp16", artifact=bundle, verification=verification,
                           location="/tmp/web", user="ada")
    second = reg.add_export("digits", 2, target="onnx", precision="int8", artifact=ArtifactRow("c" * 64, 9, True, 4),
                            verification={"passed": True})
    again = reg.add_export("digits", 2, target="web", precision="fp32", artifact=bundle, verification={"passed": True})
    assert first < second < again
    assert [e.id for e in reg.exports("digits")] == [again, second, first]
    assert [e.id for e in reg.exports("digits", 2)] == [again, second]
    row = reg.get_export(first)
    assert row is not None and row.verification == verification and row.location == "/tmp/web" and row.user == "ada"
    assert (row.target, row.precision, row.version) == ("web", "fp16", 1)
    assert [e.id for e in reg.exports_for_artifact("b" * 64)] == [first, again]
    assert reg.get_export(10_000) is None and reg.exports("other") == []
