"""Policies: who must approve what, how many, how fast, and what happens when nobody does.

A policy is YAML validated into pydantic. Rules are tried in order; the first whose `match`
fits the proposal (kind, risk, tags) sets the gate's requirement, falling back to `defaults`.

```yaml
name: strict
reviewers: {"alice": [reviewer, lead], "*": [reviewer]}
defaults: {roles: [reviewer], quorum: 1, min_review_seconds: 20, escalation: [lead]}
rules:
  - name: code-needs-two
    match: {kind: [code, experiment]}
    quorum: 2
```
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from stat import S_ISREG
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from coimprove._resources import builtin_dir, builtin_names
from coimprove._yaml import load_yaml_model
from coimprove.errors import PolicyError
from coimprove.model import Proposal, Requirement, ReviewerKind, Risk, Verdict

_ALL_VERDICTS: tuple[Verdict, ...] = ("approve", "edit", "reject", "request_changes", "escalate")
_ALL_KINDS: tuple[ReviewerKind, ...] = ("human", "scripted", "model")


class _Strict(BaseModel):
    # no NaN or infinities: a gate's deadline or review time must be a number the ledger records
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Match(_Strict):
    """Which proposals a rule applies to. Empty lists match everything."""

    kind: tuple[str, ...] = ()
    risk: tuple[Risk, ...] = ()
    tags_any: tuple[str, ...] = ()
    graph: tuple[str, ...] = ()
    gate: tuple[str, ...] = ()

    def fits(self, proposal: Proposal, *, graph: str, gate: str) -> bool:
        return (
            (not self.kind or proposal.kind in self.kind)
            and (not self.risk or proposal.risk in self.risk)
            and (not self.tags_any or bool(set(self.tags_any) & set(proposal.tags)))
            and (not self.graph or graph in self.graph)
            and (not self.gate or gate in self.gate)
        )


class Settings(_Strict):
    """Everything a rule can set. In `rules`, unset fields inherit from `defaults`."""

    roles: tuple[str, ...] | None = Field(default=None, min_length=1)
    quorum: int | None = Field(default=None, ge=1, le=20)
    reviewer_kinds: tuple[ReviewerKind, ...] | None = Field(default=None, min_length=1)
    allow: tuple[Verdict, ...] | None = Field(default=None, min_length=1)
    timeout_s: float | None = Field(default=None, gt=0)
    on_timeout: Literal["reject", "escalate"] | None = Field(
        default=None, description="fail closed: a timed-out gate is never approved"
    )
    min_review_seconds: float | None = Field(default=None, ge=0)
    review_seconds_per_kb: float | None = Field(default=None, ge=0)
    escalation: tuple[str, ...] | None = None
    canary_rate: float | None = Field(default=None, ge=0, lt=1)

    @model_validator(mode="after")
    def _must_decide(self) -> Settings:
        if self.allow is not None and not {"approve", "reject"} <= set(self.allow):
            raise ValueError("allow must include at least approve and reject")
        return self


_BASE = Settings(
    roles=("reviewer",),
    quorum=1,
    reviewer_kinds=_ALL_KINDS,
    allow=_ALL_VERDICTS,
    timeout_s=None,
    on_timeout="reject",
    min_review_seconds=10.0,
    review_seconds_per_kb=0.0,
    escalation=(),
    canary_rate=0.0,
)


class Rule(Settings):
    """A named override for the proposals its `match` selects."""

    name: str = Field(min_length=1)
    match: Match = Match()


class Policy(_Strict):
    """A validated policy. Load with `load_policy`."""

    name: str = Field(min_length=1)
    description: str = ""
    reviewers: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {"*": ("reviewer",)},  # type: ignore[arg-type]
        description="reviewer id (or fnmatch pattern) -> roles it holds",
    )
    defaults: Settings = Settings()
    rules: tuple[Rule, ...] = ()
    _merged_cache: dict[str, Settings] = PrivateAttr(default_factory=dict)
    _requirements: dict[tuple[str, int, float], Requirement] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _roles_are_held(self) -> Policy:
        held = {role for roles in self.reviewers.values() for role in roles}
        for where, settings in [("defaults", self.defaults)] + [
            (f"rules.{i}", r) for i, r in enumerate(self.rules)
        ]:
            merged = self._merge(settings)
            for field in ("roles", "escalation"):
                for role in getattr(merged, field) or ():
                    if role not in held:
                        at = f"{where}.{field}" if getattr(settings, field) else f"defaults.{field}"
                        raise ValueError(
                            f"@{at}: role {role!r} is held by no reviewer (add it under "
                            "`reviewers:`), so gates needing it could never be decided"
                        )
        names = [r.name for r in self.rules]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            first = sorted(dupes)[0]
            second = names.index(first, names.index(first) + 1)
            raise ValueError(
                f"@rules.{second}.name: rule names must be unique; repeated: {sorted(dupes)}"
            )
        return self

    def _merge(self, settings: Settings) -> Settings:
        base = _BASE.model_dump()
        for layer in (self.defaults, settings):
            base.update(
                {
                    k: v
                    for k, v in layer.model_dump(exclude={"name", "match"}).items()
                    if v is not None and k in base
                }
            )
        return Settings(**base)

    def rule_for(
        self, proposal: Proposal, *, graph: str = "", gate: str = ""
    ) -> tuple[str, Settings]:
        """The name and merged settings of the first rule matching `proposal`."""
        for rule in self.rules:
            if rule.match.fits(proposal, graph=graph, gate=gate):
                return rule.name, self._merged(rule.name, rule)
        return "defaults", self._merged("defaults", self.defaults)

    def _private(self, name: str) -> Any:
        """A private attribute read directly: ``self._name`` goes through pydantic's
        ``__getattr__``, which costs more than the cache lookups it serves."""
        private = self.__pydantic_private__
        assert private is not None  # declared attributes are set when the model is built
        return private[name]

    def _merged(self, name: str, settings: Settings) -> Settings:
        cache: dict[str, Settings] = self._private("_merged_cache")
        if name not in cache:
            cache[name] = self._merge(settings)
        return cache[name]

    def requirement(
        self, proposal: Proposal, *, graph: str = "", gate: str = "", level: int = 0
    ) -> Requirement:
        """Resolve what a gate on `proposal` requires, at escalation `level`."""
        rule, s = self.rule_for(proposal, graph=graph, gate=gate)
        escalation = s.escalation or ()
        if level > len(escalation):
            raise PolicyError(
                f"policy {self.name!r} rule {rule!r}: no escalation level {level} "
                f"(chain has {len(escalation)})"
            )
        roles = (s.roles or ("reviewer",)) if level == 0 else (escalation[level - 1],)
        per_kb = s.review_seconds_per_kb or 0.0
        scaled = round(
            (s.min_review_seconds or 0.0) + per_kb * (proposal.size / 1024 if per_kb else 0), 3
        )
        key = (rule, level, scaled)
        cache: dict[tuple[str, int, float], Requirement] = self._private("_requirements")
        found = cache.get(key)
        if found is not None:
            return found
        if len(cache) >= 1024:  # sizes vary when time scales with them
            cache.clear()
        found = cache[key] = Requirement(
            policy=self.name,
            rule=rule,
            roles=tuple(roles),
            quorum=s.quorum or 1,
            reviewer_kinds=s.reviewer_kinds or _ALL_KINDS,
            allowed=s.allow or _ALL_VERDICTS,
            timeout_s=s.timeout_s,
            on_timeout=s.on_timeout or "reject",
            min_review_seconds=scaled,
            escalation=escalation,
            level=level,
        )
        return found

    def canary_rate(self, proposal: Proposal, *, graph: str = "", gate: str = "") -> float:
        """The share of this gate's openings that show a planted flaw first (hidden)."""
        return self.rule_for(proposal, graph=graph, gate=gate)[1].canary_rate or 0.0

    def with_canary_rate(self, rate: float, *, suffix: str = "") -> Policy:
        """A copy that plants canaries at `rate` at least, in the defaults and in every rule
        that sets its own rate (rules that do not inherit it); named ``name + suffix``.

        Used for training (`coimprove review --training`): practice runs are started under
        such a copy, recorded in ``run.started`` like any policy.
        """
        if not 0 <= rate < 1:
            raise ValueError(f"canary rate must be in [0, 1), not {rate!r}")

        doc = self.model_dump(mode="json")
        doc["name"] = self.name + suffix
        doc["defaults"]["canary_rate"] = max(self.defaults.canary_rate or 0.0, rate)
        for rule in doc["rules"]:
            if rule.get("canary_rate") is not None:
                rule["canary_rate"] = max(rule["canary_rate"], rate)
        return Policy.model_validate(doc)  # a fresh object: no merged settings cached

    @property
    def uses_canaries(self) -> bool:
        """Whether any rule plants canaries (``canary_rate`` above 0)."""
        return any((s.canary_rate or 0) > 0 for s in (self.defaults, *self.rules))

    @property
    def has_timeouts(self) -> bool:
        """Whether any rule sets ``timeout_s`` (only then can a gate under it expire)."""
        return any(s.timeout_s is not None for s in (self.defaults, *self.rules))

    def roles_of(self, reviewer: str) -> set[str]:
        """Roles `reviewer` holds: the union over every matching id or pattern."""
        roles: set[str] = set()
        for pattern, granted in self.reviewers.items():
            if fnmatch.fnmatchcase(reviewer, pattern):
                roles.update(granted)
        return roles


_CACHE: dict[tuple[str, int, int], Policy] = {}


def load_policy(ref: str | Path) -> Policy:
    """Load a policy from a YAML path or a built-in name (`default`, `strict`, `canary`, …).

    A bare name that is not a file here (a folder named `demo`, say) is a built-in policy.
    Parsed policies are cached by path, size and modification time (policies are immutable).
    """
    path = Path(ref)
    if not path.is_file() and isinstance(ref, str) and "/" not in ref and not ref.endswith(".yaml"):
        path = builtin_dir("policies") / f"{ref}.yaml"
        if not path.exists():
            raise PolicyError(
                f"no policy file {ref!r} and no built-in policy of that name "
                f"(built-in: {', '.join(builtin_names('policies'))})"
            )
    try:
        stat = path.stat()
    except OSError:
        stat = None
    if stat is None:
        raise PolicyError(f"{path}: no such policy file")
    if not S_ISREG(stat.st_mode):
        what = "a directory" if path.is_dir() else "not a regular file"
        raise PolicyError(f"{path} is {what}; a policy is one YAML file")
    key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
    if key not in _CACHE:
        _CACHE[key] = load_yaml_model(Policy, path, error=PolicyError)
    return _CACHE[key]


def policy_from_yaml(text: str, *, source: str = "<string>") -> Policy:
    """Validate policy YAML given as text (errors name `source` and the line)."""
    return load_yaml_model(Policy, source, error=PolicyError, text=text)
