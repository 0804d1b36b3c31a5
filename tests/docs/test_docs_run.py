"""Every page of README.md and docs/*.md runs as written, top to bottom, in an empty folder.

The ```bash and ```python blocks of a page run in order in a fresh folder, with this
groundwork's command on PATH and no GROUNDWORK_* settings (so the defaults apply, as for
a new user). A bash block runs with ``bash -euo pipefail``; a python block is written to
a file and run with this interpreter. An HTML comment just before a block changes how it
runs (it is invisible on the rendered page):

* ``<!-- docs-test: skip REASON -->``: not run; the reason is printed.
* ``<!-- docs-test: background URL -->``: a long-running command (a server): started in
  the background, the next block runs once URL answers, and it is stopped (by PID) when
  the page ends.
* ``<!-- docs-test: exit N -->``: the block must exit with N (a documented error).
* ``<!-- docs-test: file NAME -->``: the block is a file the page tells you to save as
  NAME (the next blocks run it); it is written, not run.

A comment ``<!-- docs-test: page slow -->`` anywhere marks the whole page slow,
``<!-- docs-test: page skip REASON -->`` skips it (the reason is printed), and
``<!-- docs-test: page ray -->`` runs it only where Ray can run (a loopback-only network
namespace). Blocks in other languages (``text``, ``json``, ``yaml``...) are not run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK_TIMEOUT_S = 900

_PORT = re.compile(r"(127\.0\.0\.1|localhost):\d{4,5}|--port \d+")
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
_DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->")


@dataclass
class Block:
    language: str
    code: str
    line: int
    skip: str | None = None
    background: str | None = None
    exit_code: int = 0
    file: str | None = None


@dataclass
class Page:
    path: Path
    blocks: list[Block] = field(default_factory=list)
    marks: set[str] = field(default_factory=set)
    skip: str | None = None


def parse_page(path: Path) -> Page:
    text = path.read_text()
    page = Page(path)
    for match in _DIRECTIVE.finditer(text):
        words = match.group(1).split()
        if words[:2] == ["page", "skip"]:
            page.skip = " ".join(words[2:]) or "marked skip"
        elif words[:1] == ["page"]:
            page.marks.update(words[1:])
    for match in _FENCE.finditer(text):
        language = match.group(1).lower()
        if language not in ("bash", "sh", "shell", "python", "py"):
            continue
        line = text.count("\n", 0, match.start()) + 1
        block = Block("python" if language in ("python", "py") else "bash", match.group(2), line)
        before = text[: match.start()].rstrip()
        found = list(_DIRECTIVE.finditer(before[-300:])) if before.endswith("-->") else []
        directive = found[-1] if found and before[-300:].endswith(found[-1].group(0)) else None
        if directive and not directive.group(1).startswith("page "):
            verb, _, rest = directive.group(1).partition(" ")
            if verb == "skip":
                block.skip = rest or "marked skip"
            elif verb == "background":
                block.background = rest.strip()
            elif verb == "exit":
                block.exit_code = int(rest)
            elif verb == "file":
                block.file = rest.strip()
        page.blocks.append(block)
    return page


def _environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDWORK_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(folder / ".home")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONPATH", None)
    (folder / ".home").mkdir(exist_ok=True)
    _share_npm_runtime(folder / ".home")
    return env


def _share_npm_runtime(home: Path) -> None:
    """The fresh HOME gets this machine's verified npm runtime (what ``make setup`` fetched).

    A new user's first web export downloads it from the npm registry; the suite runs in a
    network namespace without one, so the download is done once, beforehand, like a pip cache.
    """
    from groundwork.engines.export.npm import cache_root, lock_digest

    verified = cache_root() / lock_digest()
    if (verified / "verified.json").is_file():
        target = home / ".cache" / "groundwork" / "npm" / lock_digest()
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(verified, target_is_directory=True)


def _command(block: Block, folder: Path, index: int) -> list[str]:
    if block.language == "python":
        script = folder / f".docs-block-{index}.py"
        script.write_text(block.code)
        return [sys.executable, str(script)]
    return ["bash", "-euo", "pipefail", "-c", block.code]


def _wait_for(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the background block exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within 180 s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            continue


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_page(page: Page, folder: Path) -> None:
    env = _environment(folder)
    background: list[subprocess.Popen[bytes]] = []
    try:
        for index, block in enumerate(page.blocks):
            where = f"{_shown(page.path)}:{block.line}"
            if block.skip:
                print(f"skipped {where}: {block.skip}")
                continue
            if block.file:
                target = folder / block.file
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.code)
                continue
            command = _command(block, folder, index)
            if block.background:
                log = folder / f".docs-block-{index}.log"
                with open(log, "wb") as out:
                    proc = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
                background.append(proc)
                _wait_for(block.background, proc, log)
                continue
            done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
            if done.returncode != block.exit_code:
                raise AssertionError(
                    f"{where}: exit {done.returncode} (expected {block.exit_code})\n--- block\n{block.code}"
                    f"--- stdout (end)\n{done.stdout[-3000:]}\n--- stderr (end)\n{done.stderr[-3000:]}"
                )
            if "Traceback (most recent call last)" in done.stderr and block.exit_code == 0:
                raise AssertionError(f"{where}: printed a traceback\n{done.stderr[-3000:]}")
    finally:
        for proc in background:
            _stop(proc)


def _params() -> list[object]:
    out = []
    for path in PAGES:
        page = parse_page(path)
        if not any(b for b in page.blocks if not b.skip):
            continue
        # Pages that serve on documented ports run on one worker, one after another; the others
        # run wherever there is room (each in its own empty folder).
        serves = _PORT.search(path.read_text()) is not None
        marks = [*([pytest.mark.xdist_group("docs-servers")] if serves else []),
                 *(getattr(pytest.mark, m) for m in sorted(page.marks))]
        if page.skip:
            marks.append(pytest.mark.skip(reason=f"{path.name}: {page.skip}"))
        out.append(pytest.param(page, id=str(path.relative_to(ROOT)), marks=marks))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("page", _params())
def test_page_runs_top_to_bottom_in_an_empty_folder(page: Page, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    run_page(page, folder)


def test_the_parser_reads_blocks_and_directives(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "# t\n<!-- docs-test: page slow -->\n```bash\necho hi\n```\n\n<!-- docs-test: skip needs a GPU -->\n"
        "```python\nprint(1)\n```\n<!-- docs-test: background http://127.0.0.1:1/ -->\n```bash\nsleep 1\n```\n"
        "<!-- docs-test: exit 1 -->\n```sh\nfalse\n```\n```json\n{}\n```\n"
    )
    parsed = parse_page(page)
    assert parsed.marks == {"slow"}
    assert [(b.language, b.skip, b.background, b.exit_code) for b in parsed.blocks] == [
        ("bash", None, None, 0),
        ("python", "needs a GPU", None, 0),
        ("bash", None, "http://127.0.0.1:1/", 0),
        ("bash", None, None, 1),
    ]


def test_a_failing_block_fails_the_page(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("```bash\ntest -f data/train.csv\n```\n")
    with pytest.raises(AssertionError, match="exit 1"):
        run_page(Page(page, parse_page(page).blocks), tmp_path)
