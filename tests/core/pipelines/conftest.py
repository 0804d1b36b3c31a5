"""Fixtures for pipeline tests: an isolated workspace, a throwaway project folder, a local Ray.

Ray binds every interface whatever it is told, so the ``ray_session`` fixture
starts it only inside a loopback-only network namespace (``unshare -n``); elsewhere
the Ray tests skip with the reason.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from groundwork.config import Config
from groundwork.core.pipelines import Pipeline, load_pipeline


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """A fresh SQLite store and artifact folder, set in the environment too; cwd is a scratch folder."""
    config = Config(store_url=f"sqlite:///{tmp_path / 'meta.db'}", artifacts_url=str(tmp_path / "artifacts"))
    monkeypatch.setenv("GROUNDWORK_STORE", config.store_url)
    monkeypatch.setenv("GROUNDWORK_ARTIFACTS", config.artifacts_url)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return config


class Project:
    """A folder of Python modules that tests write, change and load pipelines from."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: set[str] = set()

    def write(self, name: str, source: str) -> Path:
        path = self.root / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        self.modules.add(name)
        self.forget()
        return path

    def forget(self) -> None:
        """Drop the project's modules from sys.modules, so the next load sees the files as they are."""
        for name in self.modules:
            sys.modules.pop(name, None)

    def load(self, ref: str) -> Pipeline:
        self.forget()
        module, _, attr = ref.partition(":")
        return load_pipeline(f"{self.root / (module + '.py')}:{attr}")


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "project"
    root.mkdir()
    proj = Project(root)
    yield proj
    proj.forget()
    while str(root) in sys.path:
        sys.path.remove(str(root))


FLOW = """
    import groundwork as gw
    from pathlib import Path

    import helpers


    @gw.step
    def ingest(data: Path) -> list:
        return [int(x) for x in data.read_text().split()]


    @gw.step
    def scale(values: list, factor: int = 2) -> list:
        return [helpers.transform(v) * factor for v in values]


    @gw.step(packages=["gwfakepkg"])
    def stamp(values: list) -> dict:
        import importlib.metadata

        return {"n": len(values), "pkg": importlib.metadata.version("gwfakepkg")}


    @gw.step
    def other(n: int = 3) -> list:
        return list(range(n))


    @gw.step
    def report(scaled: list, stamp: dict, other: list) -> dict:
        gw.log({"total": sum(scaled)})
        return {"total": sum(scaled), "stamp": stamp, "other": sum(other)}


    @gw.pipeline
    def flow(data: str = "data.txt", factor: int = 2):
        values = ingest(gw.File(data))
        return report(scale(values, factor=factor), stamp(values), other())
"""


def fake_package(root: Path, version: str) -> Path:
    """A folder holding an installed-looking distribution ``gwfakepkg`` at ``version``."""
    site = root / f"site-{version}"
    info = site / f"gwfakepkg-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: gwfakepkg\nVersion: {version}\n")
    return site


@pytest.fixture
def flow_project(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workspace: Config) -> Project:
    project.write("helpers", "def transform(v):\n    return v + 1\n")
    project.write("pipe", FLOW)
    Path("data.txt").write_text("1 2 3")
    monkeypatch.syspath_prepend(str(fake_package(tmp_path, "1.0")))
    return project


def _in_loopback_namespace() -> tuple[bool, str]:
    if os.environ.get("GROUNDWORK_NO_NETNS"):
        return False, "GROUNDWORK_NO_NETNS is set"
    import socket

    try:  # the interfaces of *this* network namespace (/sys/class/net may show the host's)
        interfaces = sorted(name for _, name in socket.if_nameindex())
    except OSError:
        return False, "cannot list network interfaces"
    others = [i for i in interfaces if i != "lo"]
    if others:
        return False, (
            f"Ray binds every interface and this machine has {', '.join(others)}: run the ray tests inside a "
            "loopback-only namespace: unshare -n bash -c 'ip link set lo up && exec \"$@\"' _ .venv/bin/pytest -m ray"
        )
    return True, ""


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    """One local Ray (2 CPUs) for the whole session, only inside a loopback-only network namespace."""
    ok, reason = _in_loopback_namespace()
    if not ok:
        pytest.skip(reason)
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        yield ray
    finally:
        ray.shutdown()


WriteFn = Callable[[str, str], Path]
