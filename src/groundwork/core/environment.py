"""What a run ran on: the code version (git) and the environment (Python, packages, OS, hardware).

Two entry points, both called once per created run:

* :func:`git_state` reads the commit, branch and every uncommitted change of the
  repository around a directory, as one binary-safe patch that ``git apply``
  replays onto a checkout of that commit (``groundwork reproduce`` does exactly
  that). It never writes to the user's repository: the index is neither
  refreshed nor modified (untracked files are added to a *temporary copy* of
  the index).
* :func:`capture_environment` returns a JSON-able dict describing the
  interpreter, installed distributions, OS, CPU (with the vector/matrix
  features that decide which optimized kernels can run), memory and GPUs.

Run creation must stay cheap (thousands of runs per process), so whatever
cannot change within a process is computed once and cached; ``cwd`` and
``argv`` are read fresh on every call. Nothing here imports torch: GPUs come
from ``nvidia-smi``, and from ``torch.cuda`` only when the program has already
imported torch itself.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import hashlib
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import orjson
import psutil

_log = logging.getLogger("groundwork.core.environment")

#: The CPU features groundwork cares about (they pick kernels and quantization schemes), in this order.
CPU_FEATURES: tuple[str, ...] = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "fma",
    "f16c",
    "sse4_2",
)

#: Untracked files larger than this are left out of the diff (datasets, checkpoints), and named in ``skipped``.
MAX_UNTRACKED_FILE_BYTES = 1 << 20
#: At most this many untracked files, and this many bytes of them, go into one diff (the rest are ``skipped``).
MAX_UNTRACKED_FILES = 1000
MAX_UNTRACKED_TOTAL_BYTES = 16 << 20
#: A diff larger than this is not recorded at all (a note on the run says so): datasets edited in place, say.
MAX_DIFF_BYTES = 32 << 20
#: A git command that takes longer than this is abandoned (a huge repository, a hung filesystem).
GIT_TIMEOUT_S = 10.0

# Pin every git setting that changes the output, so equal trees give equal diffs whatever the user's config.
_GIT_ENV_OVERRIDES = {
    "GIT_OPTIONAL_LOCKS": "0",  # `git status` must not refresh (write) the user's index
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_PAGER": "cat",
    "LC_ALL": "C",
}
_DIFF_ARGS = (
    "diff",
    "--binary",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-renames",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)


# -- git ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitState:
    """The code version of a working directory.

    ``diff`` holds every uncommitted change (staged or not) relative to ``commit``,
    plus untracked text files in tracked folders as new-file patches: ``git apply`` of
    it onto a clean checkout of ``commit`` reproduces the working tree. Left out, and
    listed in ``skipped`` (paths relative to ``root``; a folder ends with ``/``): whole
    untracked folders (what earlier runs wrote into ``out/`` is not code), untracked
    files that are binary or larger than :data:`MAX_UNTRACKED_FILE_BYTES`. A diff over
    :data:`MAX_DIFF_BYTES` is dropped and ``note`` says so. Outside a repository (or
    without git) everything is None/False/empty.
    """

    commit: str | None
    branch: str | None
    dirty: bool
    diff: bytes
    root: str | None
    skipped: tuple[str, ...] = ()
    note: str | None = None


_NO_GIT = GitState(commit=None, branch=None, dirty=False, diff=b"", root=None)


@functools.cache
def _git_executable() -> str | None:
    return shutil.which("git")


def _git(
    git: str,
    args: Sequence[str],
    cwd: str | Path,
    env: Mapping[str, str] | None = None,
    stdin: bytes = b"",
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [git, *args],
        cwd=cwd,
        env={**os.environ, **_GIT_ENV_OVERRIDES, **(env or {})},
        input=stdin,
        capture_output=True,
        timeout=GIT_TIMEOUT_S,
        check=False,
    )


def git_state(cwd: Path) -> GitState:
    """The commit, branch and uncommitted changes of the repository containing ``cwd``.

    Never raises: not a repository, git missing, or git failing all give the
    empty state. Costs three or four ``git`` invocations (a few milliseconds on a
    small repository).
    """
    git = _git_executable()
    if git is None:
        return _NO_GIT
    try:
        return _git_state(git, Path(cwd))
    except (OSError, subprocess.SubprocessError, ValueError, UnicodeDecodeError):
        return _NO_GIT


def _git_state(git: str, cwd: Path) -> GitState:
    found = _git(git, ["rev-parse", "--show-toplevel", "--absolute-git-dir"], cwd)
    if found.returncode != 0:
        return _NO_GIT
    lines = found.stdout.decode("utf-8", "surrogateescape").splitlines()
    if len(lines) < 2 or not lines[0]:  # a bare repository has no work tree
        return _NO_GIT
    root, git_dir = lines[0], lines[1]

    # "normal": an untracked folder is one entry ("out/"), its files are not listed one by one.
    status = _git(git, ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=normal"], root)
    if status.returncode != 0:
        return GitState(commit=None, branch=None, dirty=False, diff=b"", root=root)
    commit: str | None = None
    branch: str | None = None
    changed = False
    untracked: list[str] = []
    entries = iter(status.stdout.split(b"\0"))
    for entry in entries:
        if entry.startswith(b"# branch.oid "):
            oid = entry[len(b"# branch.oid ") :].decode()
            commit = None if oid == "(initial)" else oid
        elif entry.startswith(b"# branch.head "):
            head = entry[len(b"# branch.head ") :].decode("utf-8", "surrogateescape")
            branch = None if head == "(detached)" else head
        elif entry.startswith(b"? "):
            untracked.append(os.fsdecode(entry[2:]))
        elif entry[:2] in (b"1 ", b"2 ", b"u "):
            changed = True
            if entry[:2] == b"2 ":
                next(entries, None)  # a rename's original path is a field of its own

    included: list[str] = []
    skipped: list[str] = []
    budget = MAX_UNTRACKED_TOTAL_BYTES
    for rel in untracked:
        if rel.endswith("/"):
            skipped.append(rel)  # a whole untracked folder: outputs of earlier runs, data, caches
            continue
        size = _small_text_file_size(Path(root, rel))
        if size is None or size > budget or len(included) >= MAX_UNTRACKED_FILES:
            skipped.append(rel)
        else:
            included.append(rel)
            budget -= size
    dirty = changed or bool(untracked)
    if not changed and not included:
        return GitState(commit, branch, dirty, b"", root, tuple(skipped))

    base = commit or _empty_tree(git, root)
    if not included:
        diff = _git(git, [*_DIFF_ARGS, base, "--"], root)
        return _capped(GitState(
            commit, branch, dirty, diff.stdout if diff.returncode == 0 else b"", root, tuple(skipped)
        ))

    # Untracked files: mark them intent-to-add in a throwaway copy of the index, then diff against it.
    with tempfile.TemporaryDirectory(prefix="groundwork-git-") as tmp:
        index = Path(tmp, "index")
        user_index = Path(git_dir, "index")
        if user_index.exists():
            shutil.copyfile(user_index, index)
        env = {"GIT_INDEX_FILE": str(index)}
        paths = b"".join(os.fsencode(p) + b"\0" for p in included)
        add = ["add", "--intent-to-add", "--force", "--pathspec-from-file=-", "--pathspec-file-nul"]
        added = _git(git, add, root, {**env, "GIT_LITERAL_PATHSPECS": "1"}, stdin=paths)
        if added.returncode != 0:
            skipped.extend(included)
            env = {}
        diff = _git(git, [*_DIFF_ARGS, base, "--"], root, env)
    return _capped(GitState(
        commit, branch, dirty, diff.stdout if diff.returncode == 0 else b"", root, tuple(sorted(skipped))
    ))


def _capped(state: GitState) -> GitState:
    """``state`` without its diff, and with a note saying why, when the diff is over :data:`MAX_DIFF_BYTES`."""
    size = len(state.diff)
    if size <= MAX_DIFF_BYTES:
        return state
    note = (f"uncommitted changes not recorded: their diff ({_mib(size)}) is over the "
            f"{_mib(MAX_DIFF_BYTES)} cap")
    return GitState(state.commit, state.branch, state.dirty, b"", state.root, state.skipped, note)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def _empty_tree(git: str, root: str) -> str:
    """The id of the empty tree (differs between SHA-1 and SHA-256 repositories)."""
    made = _git(git, ["hash-object", "-t", "tree", "/dev/null"], root)
    return made.stdout.decode().strip() or "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def _small_text_file_size(path: Path) -> int | None:
    """The size of an untracked file that belongs in the diff (a small text file), else None.

    "Text" is git's own rule: no NUL byte in the first 8000 bytes.
    """
    try:
        if path.is_symlink():
            return 0  # recorded as its target path, a tiny text patch
        size = path.stat().st_size
        if not path.is_file() or size > MAX_UNTRACKED_FILE_BYTES:
            return None
        with path.open("rb") as handle:
            return None if b"\0" in handle.read(8000) else size
    except OSError:
        return None


# -- CPU ---------------------------------------------------------------------------------------------


def parse_cpuinfo(text: str) -> tuple[str | None, frozenset[str]]:
    """The model name and the flags of the first processor in a Linux ``/proc/cpuinfo``."""
    model: str | None = None
    flags: frozenset[str] = frozenset()
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip()
        if name == "model name" and model is None:
            model = value.strip() or None
        elif name in ("flags", "Features") and not flags:  # x86 / ARM spelling
            flags = frozenset(value.split())
        if model is not None and flags:
            break
    return model, flags


@functools.cache
def _cpu_identity() -> tuple[str | None, frozenset[str]]:
    if sys.platform.startswith("linux"):
        try:
            model, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"))
        except OSError:
            model, flags = None, frozenset()
        return model or platform.processor() or None, flags
    if sys.platform == "darwin":
        return _sysctl("machdep.cpu.brand_string") or platform.processor() or None, _darwin_flags()
    return platform.processor() or None, frozenset()


def _sysctl(name: str) -> str:
    try:
        done = subprocess.run(["sysctl", "-n", name], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.decode(errors="replace").strip() if done.returncode == 0 else ""


def _darwin_flags() -> frozenset[str]:
    """Intel Macs list features in sysctl (``AVX2``, ``AVX512F``, ``FMA``...); Apple silicon has none of ours."""
    words = " ".join(_sysctl(n) for n in ("machdep.cpu.features", "machdep.cpu.leaf7_features")).lower()
    flags = set(words.split())
    renames = {"sse4.2": "sse4_2", "avx2.0": "avx2", "avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16"}
    return frozenset(renames.get(f, f) for f in flags)


def cpu_features() -> list[str]:
    """Which of :data:`CPU_FEATURES` this CPU has, in that order (empty where the OS does not say)."""
    return list(_cpu_features())


@functools.cache
def _cpu_features() -> tuple[str, ...]:
    flags = _cpu_identity()[1]
    return tuple(feature for feature in CPU_FEATURES if feature in flags)


@functools.cache
def _cpu() -> dict[str, Any]:
    try:
        physical = psutil.cpu_count(logical=False)
    except Exception:  # psutil raises odd things inside some containers
        physical = None
    try:
        available: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = None
    return {
        "model": _cpu_identity()[0],
        "machine": platform.machine(),
        "cores_logical": os.cpu_count(),
        "cores_physical": physical,
        "cores_available": available,  # what this process may use (affinity, containers)
        "features": list(_cpu_features()),
    }


# -- GPUs --------------------------------------------------------------------------------------------

_NVIDIA_SMI_FIELDS = ("index", "name", "memory.total", "driver_version", "uuid", "compute_cap")


@functools.cache
def _nvidia_smi_gpus() -> tuple[dict[str, Any], ...]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        done = subprocess.run(
            [smi, f"--query-gpu={','.join(_NVIDIA_SMI_FIELDS)}", "--format=csv,noheader,nounits"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    if done.returncode != 0:
        return ()
    return tuple(parse_nvidia_smi(done.stdout.decode(errors="replace")))


def parse_nvidia_smi(text: str) -> list[dict[str, Any]]:
    """GPUs from ``nvidia-smi --query-gpu=index,name,memory.total,driver_version,uuid,compute_cap``
    ``--format=csv,noheader,nounits`` output (memory in MiB)."""
    gpus: list[dict[str, Any]] = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) < 4 or not cells[0].isdigit():
            continue
        cells += [""] * (len(_NVIDIA_SMI_FIELDS) - len(cells))
        index, name, memory, driver, uuid, capability = cells[: len(_NVIDIA_SMI_FIELDS)]
        try:
            memory_bytes: int | None = int(float(memory) * 1024 * 1024)
        except ValueError:
            memory_bytes = None
        gpus.append(
            {
                "index": int(index),
                "name": name,
                "memory_bytes": memory_bytes,
                "driver": driver or None,
                "uuid": uuid or None,
                "capability": capability if capability and capability != "[N/A]" else None,
                "source": "nvidia-smi",
            }
        )
    return gpus


_torch_gpus_cache: list[tuple[dict[str, Any], ...]] = []


def _torch_gpus() -> tuple[dict[str, Any], ...]:
    """GPUs torch sees, only if the program imported torch already (never imported here).

    Device names need an initialized CUDA context; initializing one here would
    break programs that fork afterwards, so names are read only once torch
    initialized CUDA itself. Before that only the count is known, and it is not
    cached, so a later call can see the names.
    """
    if _torch_gpus_cache:
        return _torch_gpus_cache[0]
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is None:
        return ()
    try:
        count = int(cuda.device_count())
        if count == 0:
            found: tuple[dict[str, Any], ...] = ()
        elif not cuda.is_initialized():
            return tuple(
                {"index": i, "name": None, "memory_bytes": None, "source": "torch"} for i in range(count)
            )
        else:
            gpus = []
            for i in range(count):
                props = cuda.get_device_properties(i)
                gpus.append(
                    {
                        "index": i,
                        "name": str(props.name),
                        "memory_bytes": int(props.total_memory),
                        "capability": f"{props.major}.{props.minor}",
                        "source": "torch",
                    }
                )
            found = tuple(gpus)
    except Exception as exc:  # a broken driver must not break run creation
        _log.debug("torch could not list its GPUs: %s", exc)
        return ()
    _torch_gpus_cache.append(found)
    return found


def _gpus() -> list[dict[str, Any]]:
    """nvidia-smi's view when it has one (it sees every GPU); torch's otherwise."""
    listed = _nvidia_smi_gpus() or _torch_gpus()
    return [dict(gpu) for gpu in listed]


# -- the rest of the environment ----------------------------------------------------------------------


#: Where the list of installed distributions is cached between processes (``GROUNDWORK_CACHE_DIR``
#: overrides it): one small JSON file per interpreter, checked against the folders on ``sys.path``.
CACHE_ENV = "GROUNDWORK_CACHE_DIR"
_PACKAGES_CACHE_VERSION = 1


def cache_dir() -> Path:
    """groundwork's per-user cache folder: ``$GROUNDWORK_CACHE_DIR``, else the platform's user cache."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base, "groundwork", "Cache")
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "groundwork"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "groundwork"


@functools.cache
def _packages() -> tuple[tuple[str, str], ...]:
    """Installed distributions, ``(name, version)`` sorted by name: from the cache when nothing changed.

    Reading every distribution's metadata takes a few hundred milliseconds in a large
    environment, on every process's first run. The result is cached per interpreter in
    :func:`cache_dir`, keyed by the interpreter, ``sys.path`` and the modification time of
    each folder on it (installing, upgrading or removing a distribution changes its folder's
    time). The script's own folder (``sys.path[0]``) is left out of the key: it changes
    whenever a program writes its outputs, and distributions are not installed there.
    """
    key = _packages_key()
    path = cache_dir() / f"packages-{hashlib.sha256(key[0].encode()).hexdigest()[:16]}.json"
    cached = _read_packages_cache(path, key)
    if cached is not None:
        return cached
    found = _scan_packages()
    _write_packages_cache(path, key, found)
    return found


def _packages_key() -> tuple[str, list[Any]]:
    """(the interpreter, what the installed distributions depend on) for the packages cache."""
    interpreter = f"{sys.executable}\0{sys.prefix}\0{sys.version}"
    entries: list[Any] = []
    for index, entry in enumerate(sys.path):
        folder = entry or os.getcwd()
        if index == 0 and (not entry or _is_script_folder(entry)):
            entries.append([entry, None])
            continue
        try:
            entries.append([entry, os.stat(folder).st_mtime_ns])
        except OSError:
            entries.append([entry, None])
    return interpreter, entries


def _is_script_folder(entry: str) -> bool:
    script = sys.argv[0] if sys.argv else ""
    return bool(script) and os.path.dirname(os.path.abspath(script)) == os.path.abspath(entry)


def _read_packages_cache(path: Path, key: tuple[str, list[Any]]) -> tuple[tuple[str, str], ...] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        _log.debug("ignoring the packages cache %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or data.get("version") != _PACKAGES_CACHE_VERSION:
        return None
    if data.get("interpreter") != key[0] or data.get("path") != key[1]:
        return None
    packages = data.get("packages")
    if not isinstance(packages, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in packages
    ):
        return None
    return tuple((name, version) for name, version in packages)


def _write_packages_cache(path: Path, key: tuple[str, list[Any]], packages: tuple[tuple[str, str], ...]) -> None:
    """Write the cache atomically (a temporary file renamed over it); a cache that cannot be written is skipped."""
    body = orjson.dumps(
        {"version": _PACKAGES_CACHE_VERSION, "interpreter": key[0], "path": key[1], "packages": packages}
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".packages-", suffix=".tmp")
    except OSError as exc:
        _log.debug("could not write the packages cache in %s: %s", path.parent, exc)
        return
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        os.replace(tmp, path)
    except OSError as exc:
        _log.debug("could not write the packages cache %s: %s", path, exc)
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _scan_packages() -> tuple[tuple[str, str], ...]:
    found: dict[str, str] = {}
    for dist in importlib_metadata.distributions():
        name, version = _name_and_version(dist)
        if name and name not in found:  # the first on sys.path wins, as for imports
            found[name] = version
    return tuple(sorted(found.items(), key=lambda item: item[0].lower()))


def _name_and_version(dist: importlib_metadata.Distribution) -> tuple[str | None, str]:
    """A distribution's ``Name`` and ``Version`` from its metadata's headers alone.

    ``dist.metadata`` parses the whole file (long descriptions included) with the email
    parser; the two headers come first, so reading up to the first blank line is enough.
    Anything unusual falls back to ``dist.metadata``.
    """
    try:
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    except (OSError, UnicodeDecodeError):
        text = None
    if text:
        name = version = None
        for line in text.split("\n\n", 1)[0].splitlines():
            field, sep, value = line.partition(":")
            if not sep:
                continue
            field = field.lower()
            if field == "name" and name is None:
                name = value.strip()
            elif field == "version" and version is None:
                version = value.strip()
        if name and version is not None:
            return name, version
    try:
        return dist.metadata["Name"], dist.version
    except Exception as exc:  # a broken .dist-info must not break run creation
        _log.debug("skipping a distribution whose metadata cannot be read (%s): %s", getattr(dist, "_path", dist), exc)
        return None, ""


@functools.cache
def _static() -> dict[str, Any]:
    """Everything that cannot change within a process, except the cached parts above."""
    try:
        user: str | None = getpass.getuser()
    except Exception:  # no login name (some containers): getuser raises OSError or KeyError
        user = None
    try:
        memory: int | None = int(psutil.virtual_memory().total)
    except Exception:
        memory = None
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "os": {"system": platform.system(), "release": platform.release(), "platform": platform.platform()},
        "hostname": socket.gethostname(),
        "user": user,
        "memory_bytes": memory,
    }


def capture_environment(*, include_packages: bool = True) -> dict[str, Any]:
    """The environment of this process as a JSON-able dict (a fresh dict on every call).

    Keys: ``python`` (version, implementation, executable), ``packages``
    ({distribution: version}, sorted; only with ``include_packages``), ``os``
    (system, release, platform), ``hostname``, ``user``, ``cpu`` (model,
    machine, cores_logical, cores_physical, cores_available, features),
    ``memory_bytes``, ``gpus`` (index, name, memory_bytes, ...), ``cwd``, ``argv``.
    After the first call this takes microseconds.
    """
    static = _static()
    cpu = _cpu()
    env: dict[str, Any] = {
        "python": dict(static["python"]),
        "os": dict(static["os"]),
        "hostname": static["hostname"],
        "user": static["user"],
        "cpu": {**cpu, "features": list(cpu["features"])},
        "memory_bytes": static["memory_bytes"],
        "gpus": _gpus(),
        "cwd": _cwd(),
        "argv": list(sys.argv),
    }
    if include_packages:
        env["packages"] = dict(_packages())
    return env


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the directory was deleted under us
        return None


def environment_digest(env: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``env``: sorted keys, compact, UTF-8.

    Equal dicts give equal digests whatever their key order. Values JSON cannot
    hold are written with ``str``.
    """
    try:
        canonical = orjson.dumps(env, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    except (orjson.JSONEncodeError, TypeError):  # integers beyond 64 bits, mixed key types
        canonical = json.dumps(
            env, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        ).encode()
    return hashlib.sha256(canonical).hexdigest()
