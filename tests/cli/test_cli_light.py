"""`groundwork --help` and every command's --help stay light: no torch, ray or onnxruntime."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "ray", "onnxruntime", "openvino", "sklearn", "nncf", "transformers")


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from groundwork.cli import main, app\n"
        "import typer\n"
        "main(['--help'])\n"
        "for name in typer.main.get_command(app).commands:\n"
        "    main([name, '--help'])\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_import_groundwork_is_light() -> None:
    code = f"import sys, groundwork; print([m for m in {HEAVY!r} + ('sqlalchemy',) if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
