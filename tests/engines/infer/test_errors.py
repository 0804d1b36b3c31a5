"""Bad input gets one clear line, and never costs the chunks already finished."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _models import model_ref, tiny3d

from groundwork.cli import main
from groundwork.engines.infer import infer_volume
from groundwork.errors import InvalidInput


def one_error(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert code == 1 and "Traceback" not in err and len(lines) == 1, err
    assert expected in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def ct(tmp_path: Path) -> Path:
    path = tmp_path / "ct.npy"
    np.save(path, np.random.default_rng(0).normal(size=(1, 32, 32, 40)).astype(np.float32))
    return path


def test_a_window_larger_than_the_volume(ct: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error(capsys, ["infer", model_ref("tiny3d"), "-i", str(ct), "-o", str(tmp_path / "o.zarr"),
                              "--window", "48,16,16", "--no-record"], "window (48, 16, 16) is larger than the volume")
    assert "axis 0: 48 > 32" in line
    assert not list(tmp_path.glob("o.zarr*"))


def test_the_wrong_channel_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "two.npy", np.zeros((2, 24, 24, 24), dtype=np.float32))
    one_error(capsys, ["infer", model_ref("tiny3d"), "-i", str(tmp_path / "two.npy"), "-o", str(tmp_path / "o.npy"),
                       "--window", "16,16,16", "--no-record"],
              "the model takes 1 channel(s) but")
    # a model that does not say how many channels it takes fails on the probe window, with its reason
    import torch

    class Opaque(torch.nn.Module):  # no Conv module to read the channel count from
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(2, 1, 1, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.conv3d(x, self.weight)

    with pytest.raises(InvalidInput, match=r"the model failed on a window of shape \(1, 2, 16, 16, 16\): RuntimeError"):
        infer_volume(Opaque(), tmp_path / "two.npy", tmp_path / "o.npy", window=(16, 16, 16), record=False)


def test_an_unwritable_output(ct: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_error(capsys, ["infer", model_ref("tiny3d"), "-i", str(ct), "-o", str(ct / "out.zarr"),
                       "--window", "16,16,16", "--no-record"], "cannot write output")
    one_error(capsys, ["infer", model_ref("tiny3d"), "-i", str(ct), "-o", str(tmp_path / "out.h5"),
                       "--window", "16,16,16", "--no-record"], "cannot tell the format")
    one_error(capsys, ["infer", model_ref("tiny3d"), "-i", str(tmp_path / "nope.npy"), "-o", str(tmp_path / "o.npy"),
                       "--no-record"], "does not exist")
    one_error(capsys, ["infer", model_ref("tiny3d"), "-i", str(ct), "-o", str(ct), "--window", "16,16,16",
                       "--no-record"], "the output must not be the input")
    (tmp_path / "taken.npy").write_bytes(b"the user's own file")
    one_error(capsys, ["infer", model_ref("tiny3d"), "-i", str(ct), "-o", str(tmp_path / "taken.npy"),
                       "--window", "16,16,16", "--no-record"], "already exists")
    assert (tmp_path / "taken.npy").read_bytes() == b"the user's own file"
    one_error(capsys, ["infer", "nosuchmodel@production", "-i", str(ct), "-o", str(tmp_path / "o.npy"),
                       "--window", "16,16,16", "--no-record"], "nosuchmodel")


def test_a_corrupted_input_chunk_keeps_the_finished_chunks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import zarr

    x = np.random.default_rng(1).normal(size=(1, 32, 32, 64)).astype(np.float32)
    src = zarr.create_array(store=str(tmp_path / "ct.zarr"), shape=x.shape, chunks=(1, 16, 16, 16), dtype="float32")
    src[...] = x
    settings = {"window": (16, 16, 16), "overlap": 0.25, "batch": 2, "chunks": (8, 8, 8), "record": False}
    infer_volume(tiny3d(), tmp_path / "ct.zarr", tmp_path / "reference.zarr", **settings)  # type: ignore[arg-type]
    damaged = tmp_path / "ct.zarr" / "c" / "0" / "1" / "1" / "3"  # the last input chunk
    good = damaged.read_bytes()
    damaged.write_bytes(b"not a zstd frame" * 4)
    line = one_error(capsys, ["infer", model_ref("tiny3d"), "-i", str(tmp_path / "ct.zarr"),
                              "-o", str(tmp_path / "out.zarr"), "--window", "16,16,16", "--batch", "2",
                              "--chunks", "8,8,8", "--no-record"], "cannot read")
    assert "Zstd decompression error" in line and "output chunks finished so far are kept" in line
    partial = tmp_path / "out.zarr.partial"
    finished = [json.loads(s) for s in (partial / "journal-local.jsonl").read_text().splitlines() if s.startswith('{"d"')]
    assert finished and not (tmp_path / "out.zarr").exists()
    damaged.write_bytes(good)  # the input repaired: --resume finishes from where it stopped
    one_error(capsys, ["infer", model_ref("tiny3d"), "-i", str(tmp_path / "ct.zarr"),
                       "-o", str(tmp_path / "out.zarr"), "--window", "16,16,16", "--batch", "2",
                       "--chunks", "8,8,8", "--no-record"], "other settings (input.digest: ")
    result = infer_volume(tiny3d(), tmp_path / "ct.zarr", tmp_path / "out.zarr", resume=True,
                          **settings)  # type: ignore[arg-type]
    assert result.resumed and result.chunks_skipped == len(finished) and result.chunks_redone == 0
    ours = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...]
    assert np.array_equal(ours, zarr.open_array(str(tmp_path / "reference.zarr"), mode="r")[...])
    shutil.rmtree(tmp_path / "reference.zarr")
