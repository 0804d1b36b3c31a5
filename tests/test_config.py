"""Config pins relative local locations to where it was made."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from groundwork.config import Config


def test_relative_defaults_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = Config.from_env({})
    assert config.store_url == f"sqlite:///{tmp_path}/.groundwork/meta.db"
    assert config.artifacts_url == str(tmp_path / ".groundwork" / "artifacts")
    monkeypatch.chdir("/")
    # made elsewhere, the same config still points at tmp_path
    assert Config.from_env(config.child_environ()) == config


def test_absolute_and_remote_urls_are_kept(tmp_path: Path) -> None:
    config = Config(
        store_url="postgresql://u@127.0.0.1:5432/db", artifacts_url="s3://bucket/prefix"
    )
    assert config.store_url == "postgresql://u@127.0.0.1:5432/db"
    assert config.artifacts_url == "s3://bucket/prefix"
    assert Config(store_url=f"sqlite:///{tmp_path}/m.db").store_url == f"sqlite:///{tmp_path}/m.db"
    assert Config(store_url="sqlite:///:memory:").store_url == "sqlite:///:memory:"


def test_query_string_survives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = Config(store_url="sqlite:///meta.db?timeout=5").store_url
    assert url == f"sqlite:///{os.path.join(tmp_path, 'meta.db')}?timeout=5"
