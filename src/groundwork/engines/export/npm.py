"""The JavaScript that web bundles vendor: onnxruntime-web (and a tokenizer), from npm, pinned and verified.

``npm/package.json`` and ``npm/package-lock.json`` beside this module pin every package
and carry npm's integrity hash (SHA-512 of each package tarball). Nothing of it is in
git: :func:`ensure_runtime` installs it once with ``npm ci --ignore-scripts`` into a cache
(``GROUNDWORK_NPM_CACHE``, default ``~/.cache/groundwork/npm``), keyed by the lock's
digest (``make setup`` runs ``python -m groundwork.engines.export.npm``). Then, for each
package a bundle vendors, it packs the package's tarball from npm's own cache, checks
its SHA-512 against the lock's ``integrity``, and records the SHA-256 of every file of
the tarball in ``verified.json``. :meth:`NpmRuntime.file` hands out an installed file only
when its bytes hash to what the verified tarball held, so a bundle never carries a file
that differs from what the lock pinned.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundwork.errors import ConfigError, CorruptArtifact, ExecutionError

HERE = Path(__file__).resolve().parent / "npm"
LOCK = HERE / "package-lock.json"
CACHE_ENV = "GROUNDWORK_NPM_CACHE"
#: The packages whose files go into bundles (their tarballs are verified file by file).
VENDORED = ("onnxruntime-web", "@huggingface/tokenizers")


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "groundwork" / "npm")


def _lock() -> dict[str, Any]:
    return dict(json.loads(LOCK.read_text()))


def lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes() + (HERE / "package.json").read_bytes()).hexdigest()[:16]


def pinned(package: str) -> dict[str, str]:
    """``{"version": ..., "integrity": "sha512-..."}`` of ``package`` in the lock."""
    entry = _lock().get("packages", {}).get(f"node_modules/{package}")
    if not entry:
        raise ConfigError(f"{package} is not in {LOCK}")
    return {"version": str(entry["version"]), "integrity": str(entry["integrity"])}


@dataclass(frozen=True)
class NpmRuntime:
    """An installed, verified copy of the locked packages."""

    root: Path
    verified: dict[str, Any]

    def version(self, package: str) -> str:
        return str(self.verified[package]["version"])

    def file(self, package: str, path: str) -> Path:
        """The installed ``package/path``, checked against the SHA-256 its verified tarball recorded."""
        entry = self.verified.get(package)
        if entry is None or entry.get("integrity") != pinned(package)["integrity"]:
            raise CorruptArtifact(f"{package} in {self.root} was not verified against {LOCK.name}",
                                  hint="reinstall: python -m groundwork.engines.export.npm --reinstall")
        expected = entry["files"].get(path)
        if expected is None:
            raise ConfigError(f"{package}@{entry['version']} has no file {path!r}")
        target = self.root / "node_modules" / package / path
        digest = hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else None
        if digest != expected:
            raise CorruptArtifact(
                f"{target} differs from the {package}@{entry['version']} tarball the lock pins",
                hint="reinstall: python -m groundwork.engines.export.npm --reinstall",
            )
        return target


def ensure_runtime(*, reinstall: bool = False, quiet: bool = True) -> NpmRuntime:
    """The verified runtime, installed (``npm ci --ignore-scripts``) and verified on first use."""
    root = cache_root() / lock_digest()
    marker = root / "verified.json"
    if marker.is_file() and not reinstall:
        return NpmRuntime(root, json.loads(marker.read_text()))
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError(
            "npm is not installed: groundwork export --target web vendors onnxruntime-web from npm",
            hint="install Node.js and npm (Debian: apt-get install npm), then run the command again",
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".install-", dir=root.parent))
    try:
        shutil.copyfile(HERE / "package.json", staging / "package.json")
        shutil.copyfile(LOCK, staging / "package-lock.json")
        _npm(npm, ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], staging, quiet)
        verified: dict[str, Any] = {}
        for package in VENDORED:
            verified[package] = _verify_package(npm, package, staging, quiet)
        (staging / "verified.json").write_text(json.dumps(verified, indent=1, sort_keys=True))
        if root.exists():
            shutil.rmtree(root)
        os.replace(staging, root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return NpmRuntime(root, json.loads(marker.read_text()))


def _npm(npm: str, args: list[str], cwd: Path, quiet: bool) -> str:
    try:
        done = subprocess.run([npm, *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        raise ExecutionError(f"npm {args[0]} took more than 15 minutes in {cwd}") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise ExecutionError(f"npm {' '.join(args[:2])} failed (exit {done.returncode}): {last[0]}",
                             hint="check that the npm registry is reachable, then run the command again")
    if not quiet:
        sys.stderr.write(done.stderr)
    return done.stdout


def _verify_package(npm: str, package: str, root: Path, quiet: bool) -> dict[str, Any]:
    """Pack ``package`` from npm's cache, check the tarball against the lock, compare every installed file."""
    lock = pinned(package)
    out = root / ".tarballs"
    out.mkdir(exist_ok=True)
    listing = _npm(npm, ["pack", f"{package}@{lock['version']}", "--prefer-offline", "--json",
                         "--pack-destination", str(out)], root, quiet)
    filename = json.loads(listing)[0]["filename"]
    data = (out / Path(filename).name).read_bytes()
    algorithm, _, expected = lock["integrity"].partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise CorruptArtifact(f"the {package}@{lock['version']} tarball does not match the integrity in {LOCK.name}")
    files: dict[str, str] = {}
    installed = root / "node_modules" / package
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            relative = member.name.split("/", 1)[1]
            extracted = tar.extractfile(member)
            assert extracted is not None
            digest = hashlib.sha256(extracted.read()).hexdigest()
            path = installed / relative
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                raise CorruptArtifact(f"installed {package}/{relative} differs from the verified tarball")
            files[relative] = digest
    shutil.rmtree(out)
    return {"version": lock["version"], "integrity": lock["integrity"], "files": files}


def main(argv: list[str] | None = None) -> int:
    """``python -m groundwork.engines.export.npm [--reinstall]``: install and verify the web runtime now."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--reinstall", action="store_true", help="install again even when the cache is verified")
    args = parser.parse_args(argv)
    from groundwork.errors import GroundworkError

    try:
        runtime = ensure_runtime(reinstall=args.reinstall)
    except GroundworkError as exc:
        sys.stderr.write(f"Error: {exc.one_line()}\n")
        return 1
    versions = ", ".join(f"{p}@{runtime.version(p)}" for p in VENDORED)
    print(f"web export runtime ready in {runtime.root} ({versions}; verified against package-lock.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
