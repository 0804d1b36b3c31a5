"""The digits classifier as a web page: draw a digit on a canvas, the page predicts it (no server compute).

    python examples/export/digits.py                 # registers digits@production if missing, exports, checks
    cd exports/digits-web && python -m http.server 8000 --bind 127.0.0.1   # open http://127.0.0.1:8000/

The model takes scikit-learn's 8x8 digits as raw pixel values (0-16, 64 per row) and answers
the digit. ``index.html`` (from ``digits_page/``, given to the export as ``--template``)
turns the drawing into those 64 values the way the digits were made: the canvas is cut into
8x8 blocks and each block's ink becomes 0..16. Everything runs in the page, on the bundle's
onnxruntime-web.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
PAGE = HERE / "digits_page"


def digits_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): scikit-learn's digits, raw pixels 0..16 as float32."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order].astype(np.float32), y[order].astype(np.int64)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def train(epochs: int = 300, seed: int = 0) -> Any:
    """A small MLP that takes raw pixels (it scales them itself) and answers the digit (argmax)."""
    import torch

    class DigitClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.net(pixels / 16.0).argmax(dim=1)

    torch.manual_seed(seed)
    x, y, _, _ = digits_data()
    model = DigitClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    features, labels = torch.from_numpy(x / 16.0), torch.from_numpy(y)
    for _ in range(epochs):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model.net(features), labels).backward()
        optimizer.step()
    return model.eval()


def register(config: Any = None, name: str = "digits") -> Any:
    """Train, log as the next version of ``name`` (with 5 test rows as its example), promote to production."""
    import groundwork as gw

    model = train()
    _, _, x_test, y_test = digits_data()
    with gw.start_run(name=f"train-{name}", config=config, capture_code=False) as run:
        import torch

        accuracy = float((model(torch.from_numpy(x_test)).numpy() == y_test).mean())
        run.log({"acc": accuracy})
        version = run.log_model(model, name, example=x_test[:5])
    gw.promote_model(name, version.version, alias="production", reason=f"{accuracy:.1%} on held-out digits",
                     config=config)
    return version


def write_check_data(path: Path) -> Path:
    """The held-out digits as a verification set (``--data``)."""
    _, _, x_test, y_test = digits_data()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, input=x_test, labels=y_test)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "int8"])
    parser.add_argument("--out", default="exports/digits-web")
    args = parser.parse_args()
    import groundwork as gw
    from groundwork.errors import ModelNotFound

    try:
        version = gw.get_model_version("digits@production")
    except ModelNotFound:
        version = register()
    print(f"exporting {version.ref} ({version.flavor})")
    data = write_check_data(Path("exports/digits-check.npz"))
    result = gw.export("digits@production", target="web", precision=args.precision, out=args.out, data=str(data),
                       template=PAGE, force=True)
    agreement = result.verification["agreement"]
    print(f"{result.out}: label agreement {agreement['value']:.1%} on {agreement['rows']} rows in "
          f"{result.verification['runtime']['name']}; export {result.record.id if result.record else '-'}")
    print(f"serve it:  cd {result.out} && python -m http.server 8000 --bind 127.0.0.1   then open http://127.0.0.1:8000/")


if __name__ == "__main__":
    main()
