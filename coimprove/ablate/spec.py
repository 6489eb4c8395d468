"""Sweep specs: what an ablation runs, as validated YAML (errors name file, line and field).

```yaml
name: oversight-quality
graph: synthetic              # the built-in ablation graph, or path/to/graph.py:workflow
models: [fake]                # the model agents (and model reviewers without their own) use
policies:                     # built-in names or YAML paths, optionally with forced settings
  - default
  - {ref: default, label: canary-20, set: {canary_rate: 0.2}}
reviewers:                    # one panel answers every gate of a cell
  - {name: careful, profile: careful}               # a scripted stand-in for people
  - {name: autonomous, profile: autonomous}         # instant approval: still a gate
  - {name: ai, model: fake, think_s: 30}            # model-as-reviewer
  - {name: self, model: agent}                      # self-critique: the agent's own model
seeds: [1, 2, 3]
runs_per_cell: 40
gates_per_run: 4
```

A sweep is the product models × policies × reviewer panels × seeds; each combination is a
*cell* (`CellSpec`), the unit that runs in one process, writes one ledger and is skipped when a
re-run finds its result. Relative paths are taken from the spec file's folder. Everything a
cell needs — the policy document, the reviewer profile — is resolved here, so a cell is
self-contained (it can run on another machine) and its digest changes when any input does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from coimprove._yaml import load_yaml_model
from coimprove.errors import CoimproveError, PolicyError, SweepError
from coimprove.model import Truth, canonical_json, sha256_digest
from coimprove.policy import Policy, load_policy
from coimprove.reviewers.profiles import ReviewerProfile, load_profile

__all__ = [
    "AGENT_MODEL",
    "ARMS",
    "SYNTHETIC",
    "Arm",
    "CellSpec",
    "PanelSpec",
    "PolicyVariant",
    "SweepSpec",
    "SyntheticSpec",
    "load_spec",
    "spec_from_yaml",
]

Arm = Literal["autonomous", "self_critique", "ai_reviewed", "human_in_the_loop"]
"""How a panel oversees: no one looks (an instant approval, still recorded as a gate), the
agent's own model critiques its work (the autonomous baseline that reviews itself), a model
looks (the AI-only baseline), or people look (scripted stand-ins in headless runs)."""

AGENT_MODEL = "agent"
"""A model panel's `model` value meaning "the cell's own agent model" (self-critique)."""
ARMS: tuple[Arm, ...] = get_args(Arm)

SYNTHETIC = "synthetic"
"""The `graph` value naming the built-in ablation graph (`coimprove.ablate.synthetic`)."""

_NAME = r"^[A-Za-z0-9_.-]+$"
_PLACEHOLDERS = ("{cell}", "{cell_dir}")
Rate = Annotated[float, Field(ge=0, le=1)]
_DEFAULT_TRUTH: dict[Truth, float] = {"sound": 0.6, "flawed": 0.25, "dead_end": 0.15}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _base_dir(info: ValidationInfo) -> Path:
    ctx = info.context or {}
    return Path(ctx.get("base_dir") or ".")


def _local_path(ref: str, base: Path) -> Path | None:
    """`ref` as a file path relative to `base`, if it names one (else None: a built-in name)."""
    if "/" in ref or ref.endswith((".yaml", ".yml")):
        return (base / ref).resolve()
    return None


class PolicyVariant(_Strict):
    """A policy to sweep over: a built-in name or YAML path, with settings forced on it.

    ``set`` values apply to the policy's defaults and to every rule (so ``canary_rate: 0.2``
    plants canaries at every gate whatever the rules said). ``label`` names the variant in the
    report (default: the policy's name, plus the forced settings).
    """

    ref: str = Field(min_length=1, description="built-in policy name or YAML path")
    label: str | None = Field(default=None, pattern=_NAME)
    set: dict[str, Any] = Field(default_factory=dict, description="settings forced everywhere")
    document: dict[str, Any] = Field(
        default_factory=dict, description="the resolved policy (filled in when the spec loads)"
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, data: Any) -> Any:
        return {"ref": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> PolicyVariant:
        if self.document:
            return self
        path = _local_path(self.ref, _base_dir(info))
        try:
            base = load_policy(path if path is not None else self.ref)
        except PolicyError as exc:
            raise ValueError(f"@ref: {exc}") from None
        try:
            policy = _with_settings(base, self.set)
        except PolicyError as exc:
            raise ValueError(f"@set.{exc}") from None
        label = self.label or _default_label(base.name, self.set)
        doc = policy.model_copy(update={"name": label}).model_dump(mode="json")
        ref = str(path) if path is not None else self.ref
        return self.model_copy(update={"ref": ref, "label": label, "document": doc})

    def policy(self) -> Policy:
        """The resolved policy (named after the label)."""
        return Policy.model_validate(self.document)


def _default_label(name: str, forced: dict[str, Any]) -> str:
    if not forced:
        return name
    parts = [f"{k}={v}" for k, v in sorted(forced.items())]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{name}+{','.join(parts)}").replace("=", "-")


def _with_settings(policy: Policy, forced: dict[str, Any]) -> Policy:
    if not forced:
        return policy
    doc = policy.model_dump(mode="json")
    doc["defaults"] = {**doc["defaults"], **forced}
    doc["rules"] = [{**rule, **forced} for rule in doc["rules"]]
    try:
        return Policy.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"][1:]) or "set"
        raise PolicyError(f"{where}: {err['msg'].removeprefix('Value error, ')}") from None


class PanelSpec(_Strict):
    """Who answers a cell's gates: `count` scripted reviewers with one profile, or models.

    ``arm`` defaults to ``self_critique`` for ``model: agent`` (the cell's own agent model
    critiques the proposal with the ``self_critique`` prompt), ``ai_reviewed`` for another
    model, ``autonomous`` for the ``autonomous`` profile and ``human_in_the_loop`` for every
    other profile. ``ids`` names the reviewers
    (default ``<name>-1`` …), e.g. to match a policy's ``reviewers:`` patterns.
    """

    name: str = Field(pattern=_NAME)
    profile: str | None = Field(default=None, description="scripted profile name or YAML path")
    model: str | None = Field(default=None, description="model spec for a model reviewer")
    arm: Arm | None = None
    count: int = Field(default=1, ge=1, le=20)
    ids: tuple[str, ...] | None = None
    think_s: float = Field(
        default=30.0, ge=0, description="simulated seconds a model reviewer takes per gate"
    )
    profile_doc: dict[str, Any] = Field(
        default_factory=dict, description="the resolved profile (filled in when the spec loads)"
    )

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> PanelSpec:
        if (self.profile is None) == (self.model is None):
            raise ValueError("@profile: give exactly one of `profile` (scripted) or `model`")
        if self.ids is not None:
            if len(self.ids) != self.count:
                raise ValueError(f"@ids: {len(self.ids)} ids for count {self.count}")
            if len(set(self.ids)) != len(self.ids) or not all(self.ids):
                raise ValueError("@ids: reviewer ids must be distinct and non-empty")
        if self.model is not None:
            if self.model != AGENT_MODEL:
                _check_model_spec(self.model, "model")
            if self.arm == "self_critique" and self.model != AGENT_MODEL:
                raise ValueError(
                    f"@arm: self_critique means the agent's own model reviews: use `model: "
                    f"{AGENT_MODEL}`, not {self.model!r}"
                )
            return self
        if self.arm == "self_critique":
            raise ValueError(f"@arm: self_critique needs `model: {AGENT_MODEL}`, not a profile")
        if self.profile_doc:
            return self
        assert self.profile is not None
        path = _local_path(self.profile, _base_dir(info))
        try:
            prof = load_profile(path if path is not None else self.profile)
        except CoimproveError as exc:
            raise ValueError(f"@profile: {exc}") from None
        ref = str(path) if path is not None else self.profile
        return self.model_copy(update={"profile": ref, "profile_doc": prof.model_dump()})

    @property
    def resolved_arm(self) -> Arm:
        if self.arm is not None:
            return self.arm
        if self.model is not None:
            return "self_critique" if self.model == AGENT_MODEL else "ai_reviewed"
        return "autonomous" if self.profile_doc.get("name") == "autonomous" else "human_in_the_loop"

    @property
    def reviewer_ids(self) -> tuple[str, ...]:
        return self.ids or tuple(f"{self.name}-{i + 1}" for i in range(self.count))

    def profile_model(self) -> ReviewerProfile:
        """The scripted profile (only for a scripted panel)."""
        if not self.profile_doc:
            raise SweepError(f"panel {self.name!r} is a model panel, not a scripted one")
        return ReviewerProfile.model_validate(self.profile_doc)

    @property
    def mode(self) -> str:
        """What produced this panel's decisions, for the report: the scripted profile and its
        ``catch_mode`` (label or content), or the model (and whether it is self-critique)."""
        if self.model == AGENT_MODEL:
            return "self-critique (agent's model)"
        if self.model is not None:
            return f"model {self.model}"
        profile = self.profile_model()
        return f"scripted {profile.name}, catch_mode {profile.catch_mode}"


def _check_model_spec(spec: str, where: str) -> None:
    head, sep, rest = spec.strip().partition(":")
    if head in ("fake", "local"):
        if head == "local" and sep and not rest:
            raise ValueError(f"@{where}: 'local:' needs an embedded model name or a GGUF path")
        return
    if not (sep and head and rest):
        raise ValueError(
            f"@{where}: unknown model spec {spec!r}: use 'fake', 'local', 'local:NAME' "
            "(e.g. local:gemma3-270m), 'local:PATH.gguf' or 'provider:model'"
        )


class SyntheticSpec(_Strict):
    """The built-in ablation graph's proposals: hidden truth and how revisions behave.

    Each run makes `gates_per_run` proposals in turn. A new proposal is sound, flawed or a dead
    end with the `truth` shares. Sent back (request_changes), a flawed proposal comes back
    fixed with `fix_rate` (else polished but still flawed: approving it is reward capture), a
    dead end is abandoned for a fresh direction, a sound one stays sound. A flaw shows a
    symptom in the text with `visible_rate` (what a model reviewer can read); a sound proposal
    carries a misleading symptom with `red_herring_rate`. With `dead_end_depth`, shipping a
    dead end costs more steps: the run's next proposals continue the dead direction until one
    is stopped or the depth runs out. With `edit_fix_rate`, an edit repairs a bad proposal
    (the shipped outcome the effect records is sound), so whether edits help can be planted.
    """

    truth: dict[Truth, float] = Field(default_factory=lambda: dict(_DEFAULT_TRUTH))
    fix_rate: Rate = 0.6
    visible_rate: Rate = 0.6
    red_herring_rate: Rate = 0.05
    canary_visible_rate: Rate = Field(
        default=0.5, description="P(a planted canary flaw shows a symptom in the text)"
    )
    dead_end_depth: int = Field(
        default=0,
        ge=0,
        le=50,
        description="an approved dead end is pursued: up to this many of the run's next "
        "proposals continue it (still dead ends) until a gate stops one",
    )
    edit_fix_rate: Rate = Field(
        default=0.0,
        description="P(a reviewer's edit repairs a flawed or dead-end proposal before it ships)",
    )

    @field_validator("truth")
    @classmethod
    def _shares(cls, v: dict[Truth, float]) -> dict[Truth, float]:
        if any(share < 0 for share in v.values()):
            raise ValueError("truth shares must be >= 0")
        total = sum(v.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"truth shares must sum to 1 (they sum to {total:g})")
        return v


def _seeds(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError("a seed count must be at least 1")
        return list(range(value))
    return value


class SweepSpec(_Strict):
    """A validated sweep. Load with `load_spec`; `cells()` expands it."""

    name: str = Field(pattern=_NAME)
    description: str = ""
    graph: str = Field(
        default=SYNTHETIC, description="'synthetic' or a workflow ref (path.py:attr, module:attr)"
    )
    synthetic: SyntheticSpec = SyntheticSpec()
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="initial state of each run (workflow refs only)"
    )
    models: tuple[str, ...] = Field(default=("fake",), min_length=1)
    policies: tuple[PolicyVariant, ...] = Field(
        default=("default",), min_length=1, validate_default=True
    )
    reviewers: tuple[PanelSpec, ...] = Field(min_length=1)
    seeds: Annotated[tuple[int, ...], BeforeValidator(_seeds)] = Field(
        default=(0,), min_length=1, description="a list of seeds, or a count n (seeds 0..n-1)"
    )
    runs_per_cell: int = Field(default=20, ge=1, le=1_000_000)
    gates_per_run: int = Field(
        default=4, ge=1, le=10_000, description="proposals per run (synthetic graph)"
    )
    arrival_s: float = Field(default=600.0, ge=0, description="simulated seconds between runs")
    ledger: str = Field(
        default="{cell_dir}/ledger.db",
        description="each cell's ledger: a SQLite path or a DSN, with {cell} or {cell_dir}",
    )

    @field_validator("models")
    @classmethod
    def _models(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for i, spec in enumerate(v):
            try:
                _check_model_spec(spec, f"models.{i}")
            except ValueError as exc:
                raise ValueError(str(exc).split(": ", 1)[1]) from None
        if len(set(v)) != len(v):
            raise ValueError("models must be distinct")
        return v

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @field_validator("ledger")
    @classmethod
    def _per_cell(cls, v: str) -> str:
        if not any(p in v for p in _PLACEHOLDERS):
            raise ValueError(
                "the ledger location must contain {cell} or {cell_dir} so every cell has its "
                "own ledger (measures are computed per ledger)"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> SweepSpec:
        for field, names in (
            ("policies", [p.label for p in self.policies]),
            ("reviewers", [r.name for r in self.reviewers]),
        ):
            seen: set[str | None] = set()
            for i, name in enumerate(names):
                if name in seen:
                    key = "label" if field == "policies" else "name"
                    raise ValueError(f"@{field}.{i}.{key}: {name!r} appears twice")
                seen.add(name)
        if self.graph == SYNTHETIC:
            if self.inputs:
                raise ValueError("@inputs: the synthetic graph makes its own inputs")
            return self
        if "synthetic" in self.model_fields_set or "gates_per_run" in self.model_fields_set:
            what = "synthetic" if "synthetic" in self.model_fields_set else "gates_per_run"
            raise ValueError(
                f"@{what}: only the synthetic graph takes `{what}`; a workflow decides its own "
                "gates"
            )
        target, sep, attr = self.graph.partition(":")
        path = _local_path(target, _base_dir(info)) if target.endswith(".py") else None
        if path is not None:
            if not path.is_file():
                raise ValueError(f"@graph: no workflow file {path}")
            graph = f"{path}{sep}{attr}"
            if graph != self.graph:
                return self.model_copy(update={"graph": graph})
        return self

    def cells(self) -> list[CellSpec]:
        """Every combination of model × policy × panel × seed, in a stable order."""
        out: list[CellSpec] = []
        for model in self.models:
            for policy in self.policies:
                for panel in self.reviewers:
                    for seed in self.seeds:
                        out.append(
                            CellSpec(
                                sweep=self.name,
                                graph=self.graph,
                                synthetic=self.synthetic,
                                inputs=self.inputs,
                                model=model,
                                policy=policy,
                                panel=panel,
                                seed=seed,
                                runs=self.runs_per_cell,
                                gates_per_run=self.gates_per_run,
                                arrival_s=self.arrival_s,
                                ledger=self.ledger,
                            )
                        )
        return out


class CellSpec(_Strict):
    """One combination of the sweep: self-contained, so it can run in any process."""

    sweep: str
    graph: str
    synthetic: SyntheticSpec
    inputs: dict[str, Any]
    model: str
    policy: PolicyVariant
    panel: PanelSpec
    seed: int
    runs: int
    gates_per_run: int
    arrival_s: float
    ledger: str

    @property
    def key(self) -> str:
        """A readable, filesystem-safe name: ``<panel>.<policy>.<model>.s<seed>``."""
        raw = f"{self.panel.name}.{self.policy.label}.{self.model}.s{self.seed}"
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw)

    @property
    def digest(self) -> str:
        """Changes whenever anything the cell's result depends on changes."""
        return sha256_digest(canonical_json(self.model_dump(mode="json")).encode())

    @property
    def condition(self) -> tuple[str, str, str]:
        """(model, policy, panel): the cell without its seed (seeds are replicates)."""
        return (self.model, str(self.policy.label), self.panel.name)

    def ledger_location(self, cell_dir: Path) -> str:
        """Where this cell's ledger lives (the spec's template filled in)."""
        return self.ledger.replace("{cell_dir}", str(cell_dir)).replace("{cell}", self.key)


def load_spec(path: str | Path) -> SweepSpec:
    """Load and validate a sweep spec; errors (`SweepError`) name file, line and field."""
    file = Path(path)
    if not file.is_file():
        raise SweepError(f"{file}: no such sweep spec file")
    return load_yaml_model(
        SweepSpec, file, error=SweepError, context={"base_dir": file.resolve().parent}
    )


def spec_from_yaml(text: str, *, source: str = "<string>", base_dir: str | Path = ".") -> SweepSpec:
    """Validate a sweep spec given as text (relative paths start at `base_dir`)."""
    return load_yaml_model(
        SweepSpec, source, error=SweepError, text=text, context={"base_dir": Path(base_dir)}
    )
