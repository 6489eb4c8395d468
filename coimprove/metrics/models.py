"""The shape of a metrics report: pydantic models, so ``model_dump()`` is the JSON output.

Every rate is ``None`` (JSON null) when its denominator is 0, never NaN.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Distribution(_Model):
    """Percentiles (linear interpolation, as PostgreSQL ``percentile_cont``) of a time in s."""

    n: int = 0
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None


class CanaryMeasures(_Model):
    """Catching planted flaws: hit rate on canaries, false alarms on the rest, and d′.

    Decisions that escalate are left out of both sides (they neither pass nor stop a proposal).
    """

    n: int = Field(0, description="decisions on canary gates (escalations excluded)")
    caught: int = Field(0, description="of those, reject or request_changes")
    catch_rate: float | None = None
    non_canary: int = Field(0, description="decisions on ordinary gates (escalations excluded)")
    false_alarms: int = Field(0, description="of those, reject or request_changes")
    false_alarm_rate: float | None = None
    d_prime: float | None = None


class OverrideRates(_Model):
    """Share of decisions per non-approving verdict, and of resolved gates that timed out."""

    edit: float | None = None
    reject: float | None = None
    request_changes: float | None = None
    escalate: float | None = None
    timeout: float | None = None


class TrendBucket(_Model):
    """One slice of the human-contribution trend (decisions in time order, equal-sized)."""

    bucket: int
    decisions: int
    changed: int
    rate: float | None
    from_at: float
    to_at: float


class HumanContribution(_Model):
    """Share of people's decisions that changed the proposal (edit or request_changes)."""

    decisions: int = 0
    changed: int = 0
    rate: float | None = None
    trend: list[TrendBucket] = Field(default_factory=list)


class DeadEnd(_Model):
    """Planted dead ends (ground truth, not canaries) stopped at a gate."""

    n: int = Field(0, description="resolved dead-end gates (escalated ones excluded)")
    stopped: int = Field(0, description="of those, resolved reject or request_changes")
    rate: float | None = None


class GroupMeasures(_Model):
    """Every measure for one slice of the ledger (everything, one reviewer, one run, …).

    Decision-level measures count ``gate.decided`` events of the slice. Gate-level ones
    (``gates``, ``decided``, ``pending``, ``override.timeout``, ``dead_end``,
    ``human_wait_share``) count the slice's gates; for a reviewer or reviewer-kind slice those
    are the gates that reviewer (kind) decided at least once.
    """

    gates: int = 0
    decided: int = Field(0, description="gates resolved")
    pending: int = Field(0, description="gates opened and not yet resolved")
    decisions: int = 0
    verdicts: dict[str, int] = Field(default_factory=dict)
    latency_s: Distribution = Field(default_factory=Distribution)
    dwell_s: Distribution = Field(default_factory=Distribution)
    approval_rate: float | None = None
    rubber_stamps: int = 0
    rubber_stamp_rate: float | None = None
    canary: CanaryMeasures = Field(default_factory=CanaryMeasures)
    override: OverrideRates = Field(default_factory=OverrideRates)
    human_contribution: HumanContribution = Field(default_factory=HumanContribution)
    dead_end: DeadEnd = Field(default_factory=DeadEnd)
    human_wait_share: float | None = None
    wait_share_runs: int = Field(0, description="finished runs averaged in human_wait_share")


class PairAgreement(_Model):
    """Two reviewers on the gates both decided."""

    n: int
    observed: float | None
    kappa: float | None


class Agreement(_Model):
    """Agreement on gates with two or more decisions (quorum gates)."""

    gates: int = 0
    decisions: int = 0
    fleiss_kappa: float | None = None
    pairs: dict[str, PairAgreement] = Field(
        default_factory=dict, description='Cohen\'s kappa per reviewer pair, keyed "a|b" (a < b)'
    )


class ModelUsage(BaseModel):
    """Chat-model calls recorded as ``model.called``, beside the time people spent."""

    calls: int = 0
    seconds: float = 0.0
    tokens: int = 0
    by_actor: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per agent (``agent:<name>``) or model reviewer: calls, seconds, tokens."""
    human_wait_s: float = 0.0
    """Sum over settled gates of (resolved − opened): time the runs waited on reviewers."""


class Report(GroupMeasures):
    """The whole ledger (or one run): overall measures, agreement, and every grouping."""

    run_id: str | None = None
    model: ModelUsage = Field(default_factory=ModelUsage)
    agreement: Agreement = Field(default_factory=Agreement)
    by_reviewer: dict[str, GroupMeasures] = Field(default_factory=dict)
    by_reviewer_kind: dict[str, GroupMeasures] = Field(default_factory=dict)
    by_proposal_kind: dict[str, GroupMeasures] = Field(default_factory=dict)
    by_policy: dict[str, GroupMeasures] = Field(default_factory=dict)
    by_run: dict[str, GroupMeasures] = Field(default_factory=dict)
    by_category: dict[str, GroupMeasures] = Field(default_factory=dict)
