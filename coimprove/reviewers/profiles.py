"""Scripted reviewer profiles: how a simulated reviewer behaves, declared in YAML.

A profile says how long a reviewer takes to pick a gate up, how often it decides without really
reviewing (a *skim*: short dwell, detail never opened), how well it catches flawed proposals,
how often it raises false alarms, edits or escalates, how biased it is toward approving, and how
fatigue (a long queue, a long session) wears it down. `ScriptedReviewer` turns a profile into
seeded, deterministic reviews on a simulated clock.

```yaml
name: careful
description: Reads nearly everything; catches most flaws.
pickup: {dist: lognormal, median_s: 300, sigma: 0.8}
skim_rate: 0.05
skim_time: {dist: lognormal, median_s: 6, sigma: 0.5}
review_time: {dist: lognormal, median_s: 180, sigma: 0.6}
p_open_detail: 0.9
catch_rate: 0.85
skim_catch_rate: 0.1
false_alarm_rate: 0.05
changes_share: 0.7
edit_rate: 0.1
escalate_rate: 0.02
approval_bias: 0.0
fatigue: {skim_per_queued: 0.005, skim_per_hour: 0.01, catch_drop_per_hour: 0.01}
learning: {catch_gain: 0.02, max_catch_rate: 0.95, skim_drop: 0.0, from: [canary, outcome]}
```

``catch_mode`` says what the catch probability depends on. ``label`` (the default): only the
hidden ground truth — a flawed proposal is caught with `catch_rate` however it looks, so a sweep
reproduces the profile's own settings. ``content``: what is visible on the gate as well
(`ContentReading`) — a flawed proposal is caught with `catch_rate` only when a *cue* shows (the
framework's unchanged-resubmission flag, a high risk, a safety critique's risk, a phrase in the
text), else with `hidden_catch_rate`; a sound proposal showing a cue draws a false alarm with
`cue_false_alarm_rate`; and a long proposal dilutes attention (the catch probability halves at
`size_halving_bytes`)::

    catch_mode: content
    content: {hidden_catch_rate: 0.1, cue_false_alarm_rate: 0.3, phrases: [training split]}

A `learning` block makes the reviewer improve with feedback (`coimprove.feedback`): every
*lesson* — a feedback item telling it that it missed something — of a kind listed in ``from``
adds `catch_gain` to its catch rate (up to `max_catch_rate`) and removes `skim_drop` from its
skim rate. Lessons reach a reviewer only when its session delivers feedback to it, so the
effect of feedback can be ablated.

A duration may also be a bare number of seconds (``skim_time: 3`` means ``{dist: fixed,
seconds: 3}``). Built-in profiles live in ``policies/reviewers/<name>.yaml``.
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from coimprove._resources import builtin_dir
from coimprove._yaml import load_yaml_model
from coimprove.errors import ReviewerConfigError
from coimprove.model import RISKS, GateRequest, Risk

__all__ = [
    "CatchMode",
    "ContentReading",
    "Exponential",
    "Fatigue",
    "Fixed",
    "Latency",
    "Learning",
    "LogNormal",
    "ReviewerProfile",
    "builtin_profiles",
    "load_profile",
    "profile_from_yaml",
    "profiles_dir",
]

_STD_NORMAL = NormalDist()
_EPS = 1e-12


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _unit(u: float) -> float:
    """Keep a uniform draw strictly inside (0, 1) so inverse CDFs stay finite."""
    return min(max(u, _EPS), 1.0 - _EPS)


class LogNormal(_Strict):
    """Log-normal seconds: half the draws fall below `median_s`; `sigma` is the log-scale spread."""

    dist: Literal["lognormal"]
    median_s: float = Field(gt=0, description="median seconds")
    sigma: float = Field(ge=0, le=5, description="standard deviation of ln(seconds)")
    max_s: float | None = Field(default=None, gt=0, description="cap on a single draw")

    def sample(self, u: float) -> float:
        """The draw for uniform `u` (inverse CDF, so one uniform gives one draw)."""
        value = self.median_s * math.exp(self.sigma * _STD_NORMAL.inv_cdf(_unit(u)))
        return value if self.max_s is None else min(value, self.max_s)


class Exponential(_Strict):
    """Exponential seconds with mean `mean_s` (memoryless: a reviewer who answers 'whenever')."""

    dist: Literal["exponential"]
    mean_s: float = Field(gt=0, description="mean seconds")
    max_s: float | None = Field(default=None, gt=0, description="cap on a single draw")

    def sample(self, u: float) -> float:
        """The draw for uniform `u` (inverse CDF)."""
        value = -self.mean_s * math.log1p(-_unit(u))
        return value if self.max_s is None else min(value, self.max_s)


class Fixed(_Strict):
    """Always exactly `seconds`."""

    dist: Literal["fixed"]
    seconds: float = Field(ge=0)

    def sample(self, u: float) -> float:
        """Always `seconds`."""
        return self.seconds


def _bare_number_is_fixed(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"dist": "fixed", "seconds": value}
    return value


Latency = Annotated[
    LogNormal | Exponential | Fixed,
    BeforeValidator(_bare_number_is_fixed),
    Discriminator("dist"),
]
"""A duration distribution: ``{dist: lognormal|exponential|fixed, …}`` or a bare number."""

Rate = Annotated[float, Field(ge=0, le=1)]

_LATENCY = TypeAdapter[LogNormal | Exponential | Fixed](Latency)
_LATENCY_FIELDS = ("pickup", "skim_time", "review_time")


class Fatigue(_Strict):
    """How a long queue and a long session wear a reviewer down (effects add; clamped to [0,1])."""

    skim_per_queued: float = Field(
        default=0.0, ge=0, le=1, description="skim_rate added per gate waiting in the queue"
    )
    skim_per_hour: float = Field(
        default=0.0, ge=0, le=1, description="skim_rate added per hour of session time"
    )
    catch_drop_per_hour: float = Field(
        default=0.0, ge=0, le=1, description="catch_rate lost per hour of session time"
    )


class Learning(_Strict):
    """How feedback changes a reviewer: per lesson (a revealed miss), linear and capped."""

    model_config = ConfigDict(populate_by_name=True)  # merged with _Strict's

    catch_gain: float = Field(
        default=0.0, ge=0, le=1, description="catch_rate added per lesson (the learning rate)"
    )
    max_catch_rate: float = Field(
        default=1.0, ge=0, le=1, description="catch_rate never rises above this"
    )
    skim_drop: float = Field(default=0.0, ge=0, le=1, description="skim_rate removed per lesson")
    from_: tuple[Literal["canary", "outcome", "peers"], ...] = Field(
        default=("canary", "outcome"),
        alias="from",
        min_length=1,
        description="feedback kinds the reviewer learns from",
    )


CatchMode = Literal["label", "content"]
"""What a scripted reviewer's catch probability depends on: the hidden label only, or also
what is visible on the gate (`ContentReading`)."""


class ContentReading(_Strict):
    """What a ``catch_mode: content`` reviewer reads on the gate, and how it reacts.

    A *cue* is anything visible that a reader would take as a sign of trouble: the framework's
    flag on an unchanged or trivially changed resubmission, a proposal risk at or above
    `min_risk`, a safety critique (tag ``critic-risk:<level>``) at or above `critic_risk`, or
    one of `phrases` in the title or body (case-insensitive). Skimming, only the title and the
    flags are read (not the body).
    """

    hidden_catch_rate: Rate = Field(
        default=0.1, description="P(catch | flawed or dead end, reviewing, no cue visible)"
    )
    cue_false_alarm_rate: Rate = Field(
        default=0.3, description="P(reject or request_changes | sound, a cue visible)"
    )
    resubmission_flag: bool = Field(
        default=True, description="an unchanged/trivial resubmission flag is a cue"
    )
    min_risk: Risk | None = Field(
        default="high", description="a proposal risk at or above this is a cue (None: never)"
    )
    critic_risk: Risk | None = Field(
        default="medium",
        description="a safety critique's risk at or above this is a cue (None: never)",
    )
    phrases: tuple[str, ...] = Field(
        default=(), description="text that is a cue when it appears in the title or body"
    )
    size_halving_bytes: float | None = Field(
        default=None,
        gt=0,
        description="proposal size (bytes) at which the catch probability halves (None: no "
        "effect of size)",
    )

    @model_validator(mode="after")
    def _phrases_not_blank(self) -> ContentReading:
        for i, phrase in enumerate(self.phrases):
            if not phrase.strip():
                raise ValueError(f"@phrases.{i}: a cue phrase must not be blank")
        return self

    def cues(self, request: GateRequest, *, skim: bool = False) -> tuple[str, ...]:
        """The cues visible on `request` (empty: nothing on the gate suggests trouble)."""
        proposal = request.proposal
        found: list[str] = []
        sub = request.resubmission
        if self.resubmission_flag and sub is not None and sub.flagged:
            found.append(f"resubmission:{sub.change}")
        if self.min_risk is not None and RISKS.index(proposal.risk) >= RISKS.index(self.min_risk):
            found.append(f"risk:{proposal.risk}")
        if self.critic_risk is not None:
            floor = RISKS.index(self.critic_risk)
            for tag in proposal.tags:
                level = tag.removeprefix("critic-risk:")
                if level != tag and level in RISKS and RISKS.index(level) >= floor:
                    found.append(tag)
        text = (proposal.title if skim else f"{proposal.title}\n{proposal.body}").lower()
        found += [f"phrase:{p}" for p in self.phrases if p.lower() in text]
        return tuple(found)

    def size_factor(self, request: GateRequest) -> float:
        """What a long proposal leaves of the catch probability: 1 / (1 + size / halving)."""
        if self.size_halving_bytes is None:
            return 1.0
        return 1.0 / (1.0 + request.proposal.size / self.size_halving_bytes)


class ReviewerProfile(_Strict):
    """How a scripted reviewer behaves. Load with `load_profile`; all rates are in [0, 1].

    Per gate: with probability `skim_rate` (raised by fatigue) the reviewer *skims* — decides in
    `skim_time` (always below the gate's `min_review_seconds`) without opening the detail;
    otherwise it *reviews* — takes `review_time` (at least `min_review_seconds`) and opens the
    detail with probability `p_open_detail`. A proposal that is flawed or a dead end (or a canary)
    is caught (rejected or sent back) with `catch_rate` when reviewing, `skim_catch_rate` when
    skimming; a sound one draws a false alarm with `false_alarm_rate`. Both are multiplied by
    ``1 - approval_bias``. With ``catch_mode: content`` the probabilities also depend on what
    the gate shows (`ContentReading`, the ``content`` block).
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    pickup: Latency = Field(
        default=Fixed(dist="fixed", seconds=0.0),
        description="delay from when the reviewer is free (or the gate opens) to the first look",
    )
    skim_rate: Rate = Field(
        default=0.0, description="P(decide without a real review: short dwell, no detail)"
    )
    skim_time: Latency = Field(
        default=Fixed(dist="fixed", seconds=3.0), description="dwell when skimming"
    )
    review_time: Latency = Field(
        default=LogNormal(dist="lognormal", median_s=120.0, sigma=0.5),
        description="dwell when reviewing",
    )
    p_open_detail: Rate = Field(
        default=1.0, description="P(open the detail/diff | reviewing and there is one)"
    )
    catch_rate: Rate = Field(
        default=0.8, description="P(reject or request_changes | flawed or dead end, reviewing)"
    )
    skim_catch_rate: Rate = Field(
        default=0.0, description="P(reject or request_changes | flawed or dead end, skimming)"
    )
    false_alarm_rate: Rate = Field(default=0.05, description="P(reject or request_changes | sound)")
    changes_share: Rate = Field(
        default=0.5, description="share of negative verdicts that are request_changes, not reject"
    )
    edit_rate: Rate = Field(
        default=0.0,
        description="share of approvals after a real review that are edits (when edit is allowed)",
    )
    escalate_rate: Rate = Field(
        default=0.0, description="share of decisions escalated (when escalation is possible)"
    )
    approval_bias: Rate = Field(
        default=0.0, description="multiplies catch and false-alarm probabilities by (1 - bias)"
    )
    fatigue: Fatigue = Fatigue()
    learning: Learning | None = Field(
        default=None, description="how feedback raises catch_rate (None: never learns)"
    )
    catch_mode: CatchMode = Field(
        default="label",
        description="label: catching depends on the hidden label only; content: also on what "
        "the gate shows (the `content` block)",
    )
    content: ContentReading | None = Field(
        default=None, description="what a content-mode reviewer reads (catch_mode: content)"
    )

    @model_validator(mode="after")
    def _content_goes_with_its_mode(self) -> ReviewerProfile:
        if self.catch_mode == "label" and self.content is not None:
            raise ValueError("@content: only used with `catch_mode: content` (this is label)")
        return self

    @property
    def reading(self) -> ContentReading | None:
        """What the reviewer reads in content mode (the defaults when no block is given)."""
        if self.catch_mode != "content":
            return None
        return self.content if self.content is not None else ContentReading()

    @model_validator(mode="before")
    @classmethod
    def _latency_errors_name_the_field(cls, data: Any) -> Any:
        """Report ``pickup.median_s`` (with its line), not pydantic's ``pickup.lognormal.…``."""
        if not isinstance(data, dict):
            return data
        for field in _LATENCY_FIELDS:
            value = data.get(field)
            if value is None:
                continue
            try:
                _LATENCY.validate_python(value)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = [str(part) for part in err["loc"]]
                if loc and isinstance(value, dict) and loc[0] == value.get("dist"):
                    loc = loc[1:]
                msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
                if not loc and not isinstance(value, dict):
                    msg = "expected seconds (a number) or {dist: lognormal|exponential|fixed, …}"
                raise ValueError(f"@{'.'.join([field, *loc])}: {msg}") from None
        return data

    def effective_skim_rate(
        self, queue_length: int, session_elapsed_s: float, lessons: int = 0
    ) -> float:
        """`skim_rate` raised by the queue and the session's length and lowered by `lessons`
        learnt (with a `learning` block), clamped to [0, 1]."""
        hours = max(session_elapsed_s, 0.0) / 3600.0
        rate = (
            self.skim_rate
            + self.fatigue.skim_per_queued * max(queue_length, 0)
            + self.fatigue.skim_per_hour * hours
        )
        if self.learning is not None:
            rate -= self.learning.skim_drop * max(lessons, 0)
        return min(max(rate, 0.0), 1.0)

    def effective_catch_rate(self, session_elapsed_s: float, lessons: int = 0) -> float:
        """`catch_rate` raised by `lessons` learnt (up to the learning block's cap) and lowered
        by the session's length, clamped to [0, 1] (before bias)."""
        rate = self.catch_rate
        if self.learning is not None and lessons > 0:
            ceiling = max(self.learning.max_catch_rate, self.catch_rate)
            rate = min(rate + self.learning.catch_gain * lessons, ceiling)
        hours = max(session_elapsed_s, 0.0) / 3600.0
        return min(max(rate - self.fatigue.catch_drop_per_hour * hours, 0.0), 1.0)


# -- loading ----------------------------------------------------------------------------------


def profiles_dir() -> Path:
    """The folder holding the built-in profiles (``policies/reviewers``)."""
    return builtin_dir("policies") / "reviewers"


def builtin_profiles() -> list[str]:
    """Names of the built-in profiles (``careful``, ``rubber_stamper``, …), sorted."""
    folder = profiles_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".yaml") for p in folder.glob("*.yaml"))


def load_profile(ref: str | Path) -> ReviewerProfile:
    """Load a profile by built-in name (``careful``) or from a YAML path.

    Errors (`ReviewerConfigError`) name the file, line and field, or list the built-in names.
    """
    path = Path(ref)
    looks_like_name = (
        isinstance(ref, str) and "/" not in ref and not ref.endswith((".yaml", ".yml"))
    )
    if looks_like_name and not path.is_file():
        path = profiles_dir() / f"{ref}.yaml"
        if not path.is_file():
            raise ReviewerConfigError(
                f"no reviewer profile file {ref!r} and no built-in profile of that name "
                f"(built-in: {', '.join(builtin_profiles()) or 'none found'})"
            )
    if not path.is_file():
        raise ReviewerConfigError(
            f"{path}: no such reviewer profile file "
            f"(or use a built-in name: {', '.join(builtin_profiles()) or 'none found'})"
        )
    return load_yaml_model(ReviewerProfile, path, error=ReviewerConfigError)


def profile_from_yaml(text: str, *, source: str = "<string>") -> ReviewerProfile:
    """Validate profile YAML given as text (errors name `source` and the line)."""
    return load_yaml_model(ReviewerProfile, source, error=ReviewerConfigError, text=text)
