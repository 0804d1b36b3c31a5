"""``groundwork monitor``: drift, traffic, exit codes, --json, --alert-command, --compare, and bad input in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from _monitor_data import log_two_routes
from groundwork.config import Config


def gw_cli(*args: str, config: Config, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **config.child_environ()}
    return subprocess.run([sys.executable, "-m", "groundwork", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=cwd)


def one_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """See ``log_two_routes``: production calm, candidate drifted in pixel_10, shadow copies to candidate."""
    home = tmp_path_factory.mktemp("monitor-cli")
    return log_two_routes(home), home


def test_a_calm_alias_exits_0_with_its_traffic_and_reference(logged: Any) -> None:
    config, _ = logged
    result = gw_cli("monitor", "digits@production", config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "digits@production: version 1 now" in out
    assert "896 requests (1,790 rows)" in out and "errors 1 (0.11%)" in out
    assert "train.parquet (sha256 " in out and "1,797 rows (through lineage)" in out
    assert "no threshold crossed" in out


def test_a_drifted_alias_exits_1_and_json_names_the_feature(logged: Any) -> None:
    config, _ = logged
    result = gw_cli("monitor", "digits@candidate", "--json", config=config)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["drift"]["drifted"] == ["pixel_10"]
    assert report["alert"] is True and report["crossings"][0].startswith("drift: pixel_10: PSI")
    assert report["reference"]["source"] == "lineage" and report["reference"]["target"] == "label"
    assert report["traffic"]["requests"] == 2 * 895 and report["traffic"]["versions"] == {"2": 1790}
    assert report["traffic"]["latency_ms"]["p50"] == pytest.approx(3.0, rel=0.2)  # the canary's (shadows: 4 ms)
    pixel = next(f for f in report["drift"]["features"] if f["name"] == "pixel_10")
    assert pixel["psi"] > 0.2 and pixel["ks_pvalue"] < 1e-6 and pixel["crossed"]


def test_the_alert_command_gets_the_report_only_when_a_threshold_is_crossed(logged: Any, tmp_path: Path) -> None:
    config, _ = logged
    calm = gw_cli("monitor", "digits@production", "--alert-command", "cat > alert.json", config=config, cwd=tmp_path)
    assert calm.returncode == 0 and not (tmp_path / "alert.json").exists()
    drifted = gw_cli("monitor", "digits@candidate", "--alert-command", "cat > alert.json", config=config, cwd=tmp_path)
    assert drifted.returncode == 1
    sent = json.loads((tmp_path / "alert.json").read_text())
    assert sent["target"] == "digits@candidate" and sent["drift"]["drifted"] == ["pixel_10"]
    failing = gw_cli("monitor", "digits@candidate", "--alert-command", "exit 3", config=config)
    assert failing.returncode == 1 and "Warning: the alert command exited with 3" in failing.stderr


def test_compare_reports_agreement_and_latency_side_by_side(logged: Any) -> None:
    config, _ = logged
    result = gw_cli("monitor", "digits", "--compare", "production", "candidate", "--json", config=config)
    report = json.loads(result.stdout)
    compare = report["compare"]
    agreement = compare["agreement"]
    assert agreement["paired_rows"] == 1790 and agreement["rate"] == pytest.approx(1 - 90 / 1790)
    production, candidate = compare["traffic"]["production"], compare["traffic"]["candidate"]
    assert production["requests"] == 896 and candidate["requests"] == 2 * 895
    assert production["latency_ms"]["p50"] < candidate["latency_ms"]["p50"]
    text = gw_cli("monitor", "digits", "--compare", "production", "candidate", config=config).stdout
    assert "agreement: 94.97% of 1,790 rows answered by both" in text
    assert "latency p99 ms" in text


def test_a_window_with_nothing_logged_says_so(logged: Any) -> None:
    config, _ = logged
    result = gw_cli("monitor", "digits@production", "--since", "2000-01-01", "--until", "2000-01-02", config=config)
    assert result.returncode == 0 and "no logged requests of digits@production in this window" in result.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (["digits@prodution"], "model 'digits' has no alias 'prodution'"),
    (["nothing@production"], "no model named 'nothing'"),
    (["digits@production", "--since", "a while"], "--since 'a while' is neither a duration nor a date"),
    (["digits@production", "--since", "1h", "--until", "2h"], "--until is not after --since"),
    (["digits", "--compare", "production", "canary"], "--compare: digits has no alias 'canary'"),
    (["digits@production", "--psi", "-1"], "--psi must be a positive number"),
    (["digits@production", "--alpha", "2"], "--alpha is a probability between 0 and 1"),
])
def test_bad_input_is_one_clear_line(logged: Any, args: list[str], expected: str) -> None:
    config, _ = logged
    one_error(gw_cli("monitor", *args, config=config), expected)


def test_a_reference_with_other_columns_is_one_clear_line(logged: Any, tmp_path: Path) -> None:
    config, _ = logged
    pd.DataFrame({"height": [1.0, 2.0], "width": [3.0, 4.0], "label": [0, 1]}).to_csv(tmp_path / "other.csv",
                                                                                      index=False)
    one_error(gw_cli("monitor", "digits@production", "--reference", str(tmp_path / "other.csv"), config=config),
              "has 3 columns (height, width, label); the model takes rows of 64 values")
    one_error(gw_cli("monitor", "digits@production", "--reference", str(tmp_path / "missing.csv"), config=config),
              "no such file")


def test_a_given_reference_replaces_the_lineage_one(logged: Any) -> None:
    config, home = logged
    result = gw_cli("monitor", "digits@candidate", "--reference", str(home / "train.parquet"), "--json", config=config)
    report = json.loads(result.stdout)
    assert report["reference"]["source"] == "given" and report["drift"]["drifted"] == ["pixel_10"]


def test_help_has_an_example() -> None:
    result = subprocess.run([sys.executable, "-m", "groundwork", "monitor", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "Example:" in result.stdout and "--compare" in result.stdout
