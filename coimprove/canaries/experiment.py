"""Planted flaws in experiment specs: a hyperparameter off by 1000×, the metric computed on the
training split, the label leaked into the features.

The family reads the proposal's payload wherever the value sits: top-level keys
(``{"lr": 0.001}``), environment variables of an `ExperimentSpec` (``env: {LR: "3e-4"}``), flags
in its command (``--lr 3e-4``, ``--eval-split test``) and its inline files (``lr = 3e-4``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from coimprove.canaries.base import format_like, rebuild, set_path, walk_leaves
from coimprove.model import Proposal

HYPERPARAMETER = (
    r"lr|learning[_-]?rate|eta|alpha|weight[_-]?decay|wd|l2|dropout|momentum|epsilon|eps"
    r"|warmup(?:[_-]?steps)?|temperature|batch[_-]?size|epochs|num[_-]?epochs|max[_-]?steps"
    r"|grad(?:ient)?[_-]?clip|clip[_-]?norm|label[_-]?smoothing|gamma|tau|lambda|reg"
)
_HP_KEY = re.compile(rf"^(?:{HYPERPARAMETER})$", re.IGNORECASE)
_NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(rf"^{_NUMBER}$")
# --lr 3e-4, --learning-rate=0.001, lr = 3e-4, LR=3e-4, "lr": 0.001
_HP_IN_TEXT = re.compile(
    rf"""(?P<pre>(?:--|\b)(?:{HYPERPARAMETER})["']?\s*(?:=|:|\s)\s*)(?P<num>{_NUMBER})(?![\w.])""",
    re.IGNORECASE,
)

_SPLIT = r"test|val|valid|validation|dev|heldout|held_out|holdout"
_SPLIT_KEY = re.compile(
    r"^(?:eval|evaluation|test|val|metric|score)?[_-]?(?:split|set|subset|data|dataset)$",
    re.IGNORECASE,
)
_SPLIT_VALUE = re.compile(rf"(?<![A-Za-z])(?P<split>{_SPLIT})(?![A-Za-z])", re.IGNORECASE)
_SPLIT_IN_TEXT = re.compile(
    rf"--(?:eval[-_]?|evaluation[-_]?|metric[-_]?)?(?:split|set|subset|data|dataset)[= ]\s*\S*?"
    rf"(?P<split>{_SPLIT})(?![A-Za-z])"
    rf"|[\w/-]*?(?P<split2>{_SPLIT})\.(?:csv|tsv|jsonl|json|parquet|npz|npy|pt|txt)\b"
    r"|\b[XxYy]_(?P<split3>test|val)\b"
    r"|\b(?P<split4>test|val)_(?:loader|ds|dataset|data|set)\b",
    re.IGNORECASE,
)

_FEATURE_KEY = re.compile(
    r"^(?:features?|feature[_-]?(?:cols|columns|names|list)|input[_-]?(?:cols|columns))$",
    re.IGNORECASE,
)
_LABEL_KEY = re.compile(
    r"^(?:target|label|y|target[_-]?(?:col|column|name)|label[_-]?(?:col|column|name))$",
    re.IGNORECASE,
)
_FEATURES_FLAG = re.compile(
    r"(?P<pre>--(?:features?|feature-cols|columns|inputs)[= ]\s*)(?P<list>[\w,.-]+)"
)
_DROP_LABEL = re.compile(
    r"(?P<frame>\b\w+)\.drop\(\s*(?:columns\s*=\s*)?\[?\s*['\"]?(?P<label>[\w]+)['\"]?\s*\]?\s*"
    r"(?:,\s*axis\s*=\s*1\s*)?\)"
)

Rewrite = tuple[dict[str, Any], dict[str, str]]
"""(the flawed payload, replacements to apply to the title and body)."""


def _key(path: tuple[Any, ...]) -> str:
    return path[-1] if path and isinstance(path[-1], str) else ""


def _leaves(payload: dict[str, Any]) -> list[tuple[tuple[Any, ...], Any]]:
    return [(p, v) for p, v in walk_leaves(payload) if p and not isinstance(v, bool)]


def _sub_all(
    payload: dict[str, Any], rewrite: Callable[[tuple[Any, ...], Any], Any]
) -> dict[str, Any]:
    out = payload
    for path, value in _leaves(payload):
        new = rewrite(path, value)
        if new != value:
            out = set_path(out, path, new)
    return out


class ExperimentCanaries:
    """Hyperparameter ×1000, metric on the training set, leaked label.

    Each flaw is applied everywhere the payload states the thing it changes (a learning rate
    given both as ``--lr`` and ``LR``, every split name), so the spec stays self-consistent.
    """

    kinds: tuple[str, ...] = ("hyperparameter_x1000", "train_set_metric", "leaked_label")
    proposal_kinds: tuple[str, ...] = ("experiment",)

    def mutations(self, proposal: Proposal) -> tuple[str, ...]:
        if proposal.commit is not None:  # a code change: the code family handles those
            return ()
        probe = random.Random(0)
        return tuple(k for k in self.kinds if self._rewrite(k, proposal.payload, probe))

    def apply(self, kind: str, proposal: Proposal, rng: random.Random) -> Proposal | None:
        made = self._rewrite(kind, proposal.payload, rng)
        if made is None:
            return None
        payload, replacements = made
        return rebuild(proposal, rng, payload=payload, replacements=replacements)

    def _rewrite(self, kind: str, payload: dict[str, Any], rng: random.Random) -> Rewrite | None:
        if kind == "hyperparameter_x1000":
            made = self._hyperparameter(payload, rng)
        elif kind == "train_set_metric":
            made = self._train_split(payload)
        else:
            made = self._leak_label(payload)
        return made if made is not None and made[0] != payload else None

    # -- hyperparameter ×1000 ----------------------------------------------------------------

    @staticmethod
    def _hyperparameter(payload: dict[str, Any], rng: random.Random) -> Rewrite | None:
        values: list[str] = []  # every non-zero hyperparameter value, as written
        for path, value in _leaves(payload):
            if _HP_KEY.match(_key(path)):
                if isinstance(value, int | float) and value:
                    values.append(str(value))
                    continue
                if isinstance(value, str) and _NUMBER_RE.match(value.strip()):
                    if float(value):
                        values.append(value.strip())
                    continue
            if isinstance(value, str):
                values += [
                    m.group("num") for m in _HP_IN_TEXT.finditer(value) if float(m.group("num"))
                ]
        values = sorted(set(values))
        if not values:
            return None
        old = values[rng.randrange(len(values))]
        new = format_like(old, float(old) * 1000)

        def rewrite(path: tuple[Any, ...], value: Any) -> Any:
            if _HP_KEY.match(_key(path)):
                if isinstance(value, int | float) and str(value) == old:
                    return value * 1000 if isinstance(value, int) else float(f"{value * 1000:.6g}")
                if isinstance(value, str) and value.strip() == old:
                    return value.replace(old, new)
            if isinstance(value, str):
                return _HP_IN_TEXT.sub(
                    lambda m: m.group("pre") + new if m.group("num") == old else m.group(0), value
                )
            return value

        return _sub_all(payload, rewrite), {old: new}

    # -- metric on the training set ----------------------------------------------------------

    @staticmethod
    def _train_split(payload: dict[str, Any]) -> Rewrite | None:
        replacements: dict[str, str] = {}

        def rewrite(path: tuple[Any, ...], value: Any) -> Any:
            if not isinstance(value, str):
                return value
            if _SPLIT_KEY.match(_key(path)) and (m := _SPLIT_VALUE.search(value)):
                new = value[: m.start()] + _train_like(m.group("split")) + value[m.end() :]
                replacements[value] = new
                return new

            def swap(m: re.Match[str]) -> str:
                group = next(g for g in ("split", "split2", "split3", "split4") if m.group(g))
                whole = m.group(0)
                a, b = m.start(group) - m.start(), m.end(group) - m.start()
                new_whole = whole[:a] + _train_like(m.group(group)) + whole[b:]
                replacements[whole] = new_whole
                return new_whole

            return _SPLIT_IN_TEXT.sub(swap, value)

        return _sub_all(payload, rewrite), replacements

    # -- the label among the features --------------------------------------------------------

    @staticmethod
    def _leak_label(payload: dict[str, Any]) -> Rewrite | None:
        label = next(
            (
                v
                for p, v in _leaves(payload)
                if _LABEL_KEY.match(_key(p)) and isinstance(v, str) and v.strip()
            ),
            "label",
        )
        replacements: dict[str, str] = {}
        out = dict(payload)
        for key, value in payload.items():
            if _FEATURE_KEY.match(key) and isinstance(value, list) and label not in value:
                out[key] = [*value, label]

        def rewrite(path: tuple[Any, ...], value: Any) -> Any:
            if not isinstance(value, str):
                return value
            if _FEATURE_KEY.match(_key(path)) and "," in value:
                if label in value.split(","):
                    return value
                replacements[value] = f"{value},{label}"
                return f"{value},{label}"

            def add(m: re.Match[str]) -> str:
                if label in m.group("list").split(","):
                    return m.group(0)
                new = m.group("pre") + f"{m.group('list')},{label}"
                replacements[m.group(0)] = new
                return new

            def keep(m: re.Match[str]) -> str:
                replacements[m.group(0)] = m.group("frame")
                return m.group("frame")

            return _DROP_LABEL.sub(keep, _FEATURES_FLAG.sub(add, value))

        return _sub_all(out, rewrite), replacements


def _train_like(split: str) -> str:
    """``train`` in the same letter case as the split name it replaces."""
    if split.isupper():
        return "TRAIN"
    if split[:1].isupper():
        return "Train"
    return "train"
