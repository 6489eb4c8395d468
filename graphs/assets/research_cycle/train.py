"""Train a small classifier on the rings dataset with full-batch gradient descent (numpy only).

The METHOD block below is what the code gate reviews (as a diff). Training hyperparameters come
from the environment the approved experiment spec sets: LEARNING_RATE, EPOCHS, SEED. The
baseline (logistic regression on raw x, y) is trained beside it with the same seed.
Writes out/metrics.json: accuracy and log-loss on train and held-out data, the loss curve,
whether training diverged, and where the held-out errors are. Bad settings are reported in the
metrics (exit status 2), never silently replaced.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np
from data import make_dataset

# -- METHOD (proposed and reviewed at the code gate) --
MODEL = "logistic"
HIDDEN_UNITS = 0
L2 = 0.0
FEATURES = "raw"
# -- end of METHOD --

CURVE_POINTS = 20
OUT = "out/metrics.json"
BASELINE = {"model": "logistic", "hidden_units": 0, "l2": 0.0, "features": "raw"}
BASELINE_LR, BASELINE_EPOCHS = 0.1, 500
"""The baseline is trained beside the method in every run (same data and seed, fixed settings),
so each run's metrics hold both numbers and a comparison never mixes runs."""


def write(metrics: dict[str, object]) -> None:
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as fh:
        json.dump(metrics, fh, indent=1, allow_nan=False)


def setting(name: str, default: str) -> str:
    return os.environ.get(name, default).strip()


def bad_setting(message: str) -> None:
    write({"error": message})
    sys.exit(2)


def float_setting(name: str, default: str) -> float:
    raw = setting(name, default)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        bad_setting(f"{name}={raw!r} is not a finite number")
    return value


def int_setting(name: str, default: str) -> int:
    raw = setting(name, default)
    try:
        value = int(raw)
    except ValueError:
        bad_setting(f"{name}={raw!r} is not a whole number")
        raise
    if value < 0:
        bad_setting(f"{name}={value} must not be negative")
    return value


def features(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "quadratic":
        return np.concatenate([x, x**2, x[:, :1] * x[:, 1:]], axis=1)
    return x


def finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


class Model:
    """Logistic regression, or an MLP with one tanh hidden layer, on standardised features."""

    def __init__(
        self, d: int, rng: np.random.Generator, model: str, hidden_units: int, l2: float
    ) -> None:
        self.hidden = model == "mlp" and hidden_units > 0
        self.l2 = l2
        if self.hidden:
            self.w1 = rng.normal(0.0, 1.0 / math.sqrt(d), (d, hidden_units))
            self.b1 = np.zeros(hidden_units)
            self.w2 = rng.normal(0.0, 1.0 / math.sqrt(hidden_units), hidden_units)
        else:
            self.w2 = rng.normal(0.0, 0.01, d)
        self.b2 = 0.0

    def logits(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.hidden:
            h = np.tanh(x @ self.w1 + self.b1)
            return h @ self.w2 + self.b2, h
        return x @ self.w2 + self.b2, None

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        z, _ = self.logits(x)
        data = float(np.mean(np.logaddexp(0.0, z) - y * z))
        return data + self.l2 * float(
            np.sum(self.w2**2) + (np.sum(self.w1**2) if self.hidden else 0)
        )

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> None:
        z, h = self.logits(x)
        g = (1.0 / (1.0 + np.exp(-z)) - y) / len(y)  # d loss / d logits
        if h is not None:
            gh = np.outer(g, self.w2) * (1.0 - h**2)
            self.w1 -= lr * (x.T @ gh + 2 * self.l2 * self.w1)
            self.b1 -= lr * gh.sum(axis=0)
            self.w2 -= lr * (h.T @ g + 2 * self.l2 * self.w2)
        else:
            self.w2 -= lr * (x.T @ g + 2 * self.l2 * self.w2)
        self.b2 -= lr * float(g.sum())

    def params_finite(self) -> bool:
        arrays = [self.w2, np.array([self.b2])]
        if self.hidden:
            arrays += [self.w1, self.b1]
        return all(bool(np.all(np.isfinite(a))) for a in arrays)


def accuracy(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    z, _ = model.logits(x)
    return float(np.mean((z > 0).astype(int) == y))


def error_breakdown(model: Model, x_raw: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict:
    z, _ = model.logits(x)
    wrong = (z > 0).astype(int) != y
    radius = np.hypot(x_raw[:, 0], x_raw[:, 1])
    bands = {"inner (r<0.9)": radius < 0.9, "boundary (0.9-1.4)": (radius >= 0.9) & (radius < 1.4)}
    bands["outer (r>=1.4)"] = radius >= 1.4
    return {
        "held_out_errors": int(wrong.sum()),
        "by_true_class": {str(c): int(wrong[y == c].sum()) for c in (0, 1)},
        "by_radius": {
            name: {"n": int(mask.sum()), "errors": int(wrong[mask].sum())}
            for name, mask in bands.items()
        },
    }


def train(
    method: dict[str, object], lr: float, epochs: int, seed: int
) -> tuple[Model, dict[str, object]]:
    """Train `method` on the rings; the model and its metrics (without the method's name)."""
    (x_tr_raw, y_tr), (x_ho_raw, y_ho) = make_dataset()
    f_tr, f_ho = (
        features(x_tr_raw, str(method["features"])),
        features(x_ho_raw, str(method["features"])),
    )
    mean, std = f_tr.mean(axis=0), f_tr.std(axis=0) + 1e-8
    x_tr, x_ho = (f_tr - mean) / std, (f_ho - mean) / std
    model = Model(
        x_tr.shape[1],
        np.random.default_rng(seed),
        str(method["model"]),
        int(method["hidden_units"]),  # type: ignore[call-overload]
        float(method["l2"]),  # type: ignore[arg-type]
    )
    every = max(1, epochs // CURVE_POINTS)
    curve: list[float | None] = []
    diverged, ran = False, 0
    with np.errstate(all="ignore"):
        initial_loss = model.loss(x_tr, y_tr)
        for epoch in range(epochs):
            model.step(x_tr, y_tr, lr)
            ran = epoch + 1
            if not model.params_finite():
                diverged = True
                break
            if epoch % every == 0 or ran == epochs:
                curve.append(finite(model.loss(x_tr, y_tr)))
        train_loss, held_out_loss = model.loss(x_tr, y_tr), model.loss(x_ho, y_ho)
        metrics: dict[str, object] = {
            "epochs_run": ran,
            # non-finite weights, or a loss that ended far above where it started
            "diverged": diverged or not math.isfinite(train_loss) or train_loss > 2 * initial_loss,
            "initial_train_loss": finite(initial_loss),
            "train_accuracy": accuracy(model, x_tr, y_tr),
            "held_out_accuracy": accuracy(model, x_ho, y_ho),
            "train_loss": finite(train_loss),
            "held_out_loss": finite(held_out_loss),
            "loss_curve": curve,
            "errors": error_breakdown(model, x_ho_raw, x_ho, y_ho),
        }
    return model, metrics


def main() -> None:
    lr = float_setting("LEARNING_RATE", "0.1")
    epochs = int_setting("EPOCHS", "200")
    seed = int_setting("SEED", "0")
    started = time.perf_counter()
    method = {"model": MODEL, "hidden_units": HIDDEN_UNITS, "l2": L2, "features": FEATURES}
    model, trained = train(method, lr, epochs, seed)
    _, base = train(BASELINE, BASELINE_LR, BASELINE_EPOCHS, seed)
    metrics = {
        "model": MODEL,
        "hidden_units": HIDDEN_UNITS if model.hidden else 0,
        "l2": L2,
        "features": FEATURES,
        "learning_rate": lr,
        "epochs": epochs,
        "seed": seed,
        **trained,
        "baseline": {
            **BASELINE,
            "learning_rate": BASELINE_LR,
            "epochs": BASELINE_EPOCHS,
            "seed": seed,
            "train_accuracy": base["train_accuracy"],
            "held_out_accuracy": base["held_out_accuracy"],
        },
        "train_seconds": round(time.perf_counter() - started, 3),
    }
    write(metrics)
    print(json.dumps({k: metrics[k] for k in ("held_out_accuracy", "train_loss", "diverged")}))


if __name__ == "__main__":
    main()
