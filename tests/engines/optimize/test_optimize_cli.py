"""``groundwork optimize`` end to end: report, plot, chosen variant, tracked run; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from optimize_testlib import Digits

import groundwork.cli.optimize  # noqa: F401  registers the command (the CLI package imports it too)
from groundwork.cli import main
from groundwork.engines.optimize.loading import load_callable
from groundwork.engines.runtime import load_session

torch = pytest.importorskip("torch")

FACTORY = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def make():
    torch.manual_seed(0)
    net = Net()
    net.load_state_dict(torch.load(__file__.replace("models.py", "weights.pt")))
    return net.eval()
'''


@pytest.fixture()
def workspace(tmp_path: Path, digits: Digits, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with models.py:make (a trained MLP), eval.npz (with labels) and calib.npz."""
    (tmp_path / "models.py").write_text(FACTORY)
    net_class = load_callable(f"{tmp_path / 'models.py'}:Net")
    torch.manual_seed(0)
    model = net_class()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    np.savez(tmp_path / "eval.npz", x=digits.x_test[:200], labels=digits.y_test[:200])
    np.savez(tmp_path / "calib.npz", x=digits.x_train[:64])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GROUNDWORK_STORE", f"sqlite:///{tmp_path / 'meta.db'}")
    monkeypatch.setenv("GROUNDWORK_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path


def test_cli_writes_report_and_chosen_variant_and_records_a_run(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "optimize",
            "models.py:make",
            "--eval",
            "eval.npz",
            "--metric",
            "accuracy",
            "--max-drop",
            "0.02",
            "--calibration",
            "calib.npz",
            "--batch-sizes",
            "1,16",
            "--candidates",
            "ort,openvino-int8,pruned",
            "--sparsity",
            "0.25",
            "--out",
            "out",
            "--quick",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)  # --json prints only the report: no progress bars on stdout
    assert report["chosen"] and report["metric"] == "accuracy"
    assert {r["id"] for r in report["rows"]} >= {"torch-fp32", "ort-int8-static", "openvino-int8", "pruned25-openvino-int8"}
    out = workspace / "out"
    for name in ("report.json", "report.md", "speed_vs_quality.png", "chosen/variant.json"):
        assert (out / name).is_file()
    session = load_session(out / "chosen")
    (logits,) = session.run({"x": np.load(workspace / "eval.npz")["x"][:5]})
    assert logits.shape == (5, 10)
    assert report["run_id"]
    import groundwork as gw
    from groundwork.config import Config

    run = gw.get_run(report["run_id"], config=Config.from_env())
    assert run.status == "finished"
    assert run.params["metric"] == "accuracy"
    assert "chosen.throughput" in run.metrics
    assert run.kind == "optimize" and run.tags["kind"] == "optimize" and run.tags["chosen"] == report["chosen"]
    assert run.tags["cpu"] == report["hardware"]["cpu_model"]
    outputs = {link.name: link for link in run.outputs}
    assert set(outputs) >= {"report.json", "report.md", "speed_vs_quality.png", "chosen"}
    assert outputs["chosen"].is_dir and outputs["speed_vs_quality.png"].kind == "plot"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models.py:make", "--eval", "eval.npz", "--metric", "f1"], "unknown metric 'f1'"),
        (["models.py:make", "--eval", "eval.npz", "--candidates", "ort-int8-static"], "need calibration data"),
        (["no-such-model@production", "--eval", "eval.npz"], "no model named 'no-such-model'"),
        (["models.py:make", "--eval", "wrong.npz"], "eval data does not fit the model"),
    ],
)
def test_cli_bad_input_is_one_error_line(
    workspace: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    np.savez(workspace / "wrong.npz", x=np.zeros((4, 3, 5), np.float32))
    code = main(["optimize", *args, "--no-record", "--batch-sizes", "1,4"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and message in error_lines[0], err


def test_cli_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optimize", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example:" in out and "--max-drop" in out
