"""One Config object, built from flags and environment, passed down explicitly.

Every setting is a URL or a plain value:

=========================  ===========================================  ====================================
setting                    environment variable                          default
=========================  ===========================================  ====================================
``store_url``              ``GROUNDWORK_STORE``                          ``sqlite:///./.groundwork/meta.db``
``artifacts_url``          ``GROUNDWORK_ARTIFACTS``                      ``./.groundwork/artifacts``
``server_url``             ``GROUNDWORK_SERVER``                         none (embedded mode)
``token``                  ``GROUNDWORK_TOKEN``                          none
``ray_address``            ``GROUNDWORK_RAY_ADDRESS``                    none (a local Ray when asked for)
``project``                ``GROUNDWORK_PROJECT``                        ``default``
=========================  ===========================================  ====================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from groundwork.errors import ConfigError

DEFAULT_STORE = "sqlite:///./.groundwork/meta.db"
DEFAULT_ARTIFACTS = "./.groundwork/artifacts"
DEFAULT_PROJECT = "default"
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

ENV_VARS = {
    "store_url": "GROUNDWORK_STORE",
    "artifacts_url": "GROUNDWORK_ARTIFACTS",
    "server_url": "GROUNDWORK_SERVER",
    "token": "GROUNDWORK_TOKEN",
    "ray_address": "GROUNDWORK_RAY_ADDRESS",
    "project": "GROUNDWORK_PROJECT",
}


@dataclass(frozen=True)
class Config:
    """Where groundwork keeps its metadata and artifacts, and what it talks to."""

    store_url: str = DEFAULT_STORE
    artifacts_url: str = DEFAULT_ARTIFACTS
    server_url: str | None = None
    token: str | None = None
    ray_address: str | None = None
    project: str = DEFAULT_PROJECT

    def __post_init__(self) -> None:
        check_project(self.project)
        # Relative local locations are pinned to the directory the Config was made in:
        # `groundwork reproduce` and pipeline workers run code in other directories, and
        # must still find the same store and artifacts.
        object.__setattr__(self, "store_url", _absolute_sqlite_url(self.store_url))
        object.__setattr__(self, "artifacts_url", _absolute_local_path(self.artifacts_url))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: str | None) -> Config:
        """Settings from the environment, then ``overrides`` (flags) on top.

        An override of ``None`` means "not given" and keeps the environment's value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, str | None] = {}
        for field, var in ENV_VARS.items():
            value = env.get(var) or None
            if overrides.get(field) is not None:
                value = overrides[field]
            if value is not None:
                values[field] = value
        unknown = set(overrides) - set(ENV_VARS)
        if unknown:
            raise TypeError(f"unknown Config settings: {sorted(unknown)}")
        return cls(**values)  # type: ignore[arg-type]

    def with_(self, **changes: str | None) -> Config:
        return replace(self, **changes)  # type: ignore[arg-type]

    def child_environ(self) -> dict[str, str]:
        """Environment variables that hand this config to a child process."""
        out: dict[str, str] = {}
        for field, var in ENV_VARS.items():
            value = getattr(self, field)
            if value is not None:
                out[var] = value
        return out


def _absolute_sqlite_url(url: str) -> str:
    """``sqlite:///rel/path`` -> ``sqlite:////abs/path``; other URLs unchanged."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    rest = url[len(prefix):]
    path, sep, query = rest.partition("?")
    if not path or path.startswith("/") or path == ":memory:":
        return url
    return prefix + os.path.abspath(os.path.expanduser(path)) + sep + query


def _absolute_local_path(url: str) -> str:
    """A plain relative folder -> an absolute one; ``scheme://`` URLs unchanged."""
    if "://" in url or not url:
        return url
    return os.path.abspath(os.path.expanduser(url))


def check_project(name: str) -> str:
    """``name`` if it is a valid project name (lower case letters, digits, ``.``, ``_``, ``-``; 64 at most)."""
    if not isinstance(name, str) or not _PROJECT.match(name):
        raise ConfigError(
            f"invalid project name {name!r}",
            hint="use lower case letters, digits, '.', '_' and '-' (64 at most), starting with a letter or digit",
        )
    return name
