"""Planted flaws in benchmark items: a reference answer that is wrong.

The wrong answer keeps the shape of the right one, so it reads as an honest item: a number is
nudged, a choice letter or option swapped for another, yes/no and true/false flipped, a claim
negated or turned into its opposite ("increases" → "decreases"). The body, which quotes the
reference answer, quotes the wrong one.
"""

from __future__ import annotations

import random
import re
from typing import Any

from coimprove.canaries.base import format_like, rebuild
from coimprove.model import Proposal

ANSWER_KEYS = (
    "reference_answer",
    "answer",
    "expected_answer",
    "correct_answer",
    "gold_answer",
    "gold",
)
CHOICE_KEYS = ("choices", "options")
QUESTION_KEYS = ("prompt", "question", "input")

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_LETTER = re.compile(r"^\(?([A-Ha-h])\)?[.)]?$")
_FLIPS = {
    "yes": "no",
    "true": "false",
    "correct": "incorrect",
    "increases": "decreases",
    "increase": "decrease",
    "higher": "lower",
    "more": "less",
    "larger": "smaller",
    "before": "after",
    "always": "never",
    "should": "should not",
    "can": "cannot",
    "is": "is not",
    "are": "are not",
    "does": "does not",
    "will": "will not",
    "would": "would not",
    "desirable": "undesirable",
    "stable": "unstable",
    "own": "others'",
}
_FLIP = {**_FLIPS, **{v: k for k, v in _FLIPS.items() if " " not in v and v != "others'"}}
_WORD = re.compile(
    r"\b(" + "|".join(sorted((re.escape(w) for w in _FLIP), key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


def wrong_answer(answer: Any, rng: random.Random, choices: list[Any] | None = None) -> Any:
    """A plausible but wrong version of `answer`, or None if none can be made."""
    if isinstance(answer, bool):
        return not answer
    if isinstance(answer, int | float):
        return _nudge_number(answer, rng)
    if not isinstance(answer, str) or not answer.strip():
        return None
    if choices:
        others = [c for c in choices if str(c).strip() != answer.strip()]
        if others and len(others) < len(choices):
            return str(others[rng.randrange(len(others))])
    if m := _LETTER.match(answer.strip()):
        letter = m.group(1)
        pool = [c for c in "ABCD" if c != letter.upper()]
        new = pool[rng.randrange(len(pool))]
        return answer.replace(letter, new if letter.isupper() else new.lower(), 1)
    numbers = list(_NUMBER.finditer(answer))
    if numbers:
        m = numbers[rng.randrange(len(numbers))]
        new_num = format_like(m.group(0), _nudge_number(float(m.group(0)), rng))
        if "." not in m.group(0) and "e" not in m.group(0).lower():
            new_num = str(round(float(new_num)))
        return answer[: m.start()] + new_num + answer[m.end() :]
    words = list(_WORD.finditer(answer))
    if words:
        m = words[0]  # the first claim word: usually the verdict of the answer
        return (
            answer[: m.start()]
            + _same_case(m.group(0), _FLIP[m.group(0).lower()])
            + answer[m.end() :]
        )
    return None


def _nudge_number(value: float, rng: random.Random) -> float:
    if float(value).is_integer():
        step = max(1, round(abs(value) * rng.choice((0.1, 0.2, 0.5)))) * rng.choice((-1, 1))
        out = value + step
        return type(value)(out) if isinstance(value, int) else float(out)
    return float(f"{value * rng.choice((0.5, 0.8, 1.25, 2.0)):.6g}")


def _same_case(old: str, new: str) -> str:
    if old.isupper() and len(old) > 1:
        return new.upper()
    if old[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


class BenchmarkCanaries:
    """A benchmark item whose reference answer is wrong."""

    kinds: tuple[str, ...] = ("wrong_answer",)
    proposal_kinds: tuple[str, ...] = ("benchmark_item",)

    def mutations(self, proposal: Proposal) -> tuple[str, ...]:
        item = proposal.kind in self.proposal_kinds or any(
            k in proposal.payload for k in QUESTION_KEYS
        )
        return ("wrong_answer",) if item and self._answer_key(proposal.payload) else ()

    def apply(self, kind: str, proposal: Proposal, rng: random.Random) -> Proposal | None:
        key = self._answer_key(proposal.payload)
        if key is None:
            return None
        answer = proposal.payload[key]
        choices = next(
            (proposal.payload[c] for c in CHOICE_KEYS if isinstance(proposal.payload.get(c), list)),
            None,
        )
        wrong = wrong_answer(answer, rng, choices)
        if wrong is None or wrong == answer:
            return None
        payload = {**proposal.payload, key: wrong}
        return rebuild(proposal, rng, payload=payload, replacements={str(answer): str(wrong)})

    @staticmethod
    def _answer_key(payload: dict[str, Any]) -> str | None:
        for key in ANSWER_KEYS:
            value = payload.get(key)
            if value is not None and value != "" and not isinstance(value, dict | list):
                return key
        return None
