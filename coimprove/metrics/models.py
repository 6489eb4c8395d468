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


class Sensitivity(_Model):
    """d′ = z(hit rate) − z(false-alarm rate), log-linear corrected, with a 95% interval
    (delta method); all None when there is no signal or no noise trial."""

    value: float | None = None
    low: float | None = None
    high: float | None = None


class CanaryMeasures(_Model):
    """Catching planted flaws: hit rate on canaries, false alarms, and two d′.

    A false alarm is stopping (reject or request_changes) a proposal that is sound. Where
    proposals carry a hidden truth label (headless studies, labelled proposals) the ones known
    to be sound give the false-alarm rate and ``d_prime_sound``, the reviewer's sensitivity.
    Without labels only canary vs every ordinary proposal can be compared: stopping a real
    flaw then counts as a false alarm, so ``false_alarm_rate`` is an upper bound of the true
    one and ``d_prime_lower_bound`` a lower bound of the sensitivity whenever real flaws are
    present. Decisions that escalate are left out everywhere (they neither pass nor stop a
    proposal).
    """

    n: int = Field(0, description="decisions on canary gates (escalations excluded)")
    caught: int = Field(0, description="of those, reject or request_changes")
    catch_rate: float | None = None
    non_canary: int = Field(0, description="decisions on ordinary gates (escalations excluded)")
    false_alarms: int = Field(
        0, description="of those, reject or request_changes (real flaws stopped included)"
    )
    false_alarm_rate: float | None = Field(
        None, description="false_alarms / non_canary: an upper bound when real flaws are present"
    )
    sound: int = Field(
        0, description="decisions on ordinary gates whose proposal is labelled sound"
    )
    sound_false_alarms: int = Field(0, description="of those, reject or request_changes")
    sound_false_alarm_rate: float | None = Field(
        None, description="sound_false_alarms / sound: the false-alarm rate (None unlabelled)"
    )
    d_prime_sound: Sensitivity = Field(
        default_factory=Sensitivity,
        description="sound-only d′: canaries vs proposals known to be sound",
    )
    d_prime_lower_bound: Sensitivity = Field(
        default_factory=Sensitivity,
        description="canaries vs every ordinary proposal: a lower bound of d′ when real "
        "flaws are present",
    )


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
    """Agreement on gates decided by two or more reviewers (quorum gates)."""

    gates: int = 0
    decisions: int = 0
    """Ratings counted: one per reviewer per gate (their last verdict on it)."""
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


# -- bidirectional co-improvement (coimprove.metrics.learning / .convergence) ------------------


class RatePoint(_Model):
    """A rate over one slice of time: ``hits`` of ``n`` trials, with a 95% Wilson interval.

    ``index`` is the slice (1-based bucket of equal size, or session number); ``first`` and
    ``last`` are the positions covered (the reviewer's or agent's k-th trial), ``from_at`` and
    ``to_at`` their times.
    """

    index: int
    n: int
    hits: int
    rate: float | None
    low: float | None
    high: float | None
    first: int
    last: int
    from_at: float
    to_at: float


class MeanPoint(_Model):
    """A mean over one slice of time, with a 95% normal interval (None below two values)."""

    index: int
    n: int
    mean: float | None
    low: float | None
    high: float | None
    first: int
    last: int


class Slope(_Model):
    """Least-squares line ``y = intercept + slope·x`` with the slope's 95% interval (normal
    approximation, ordinary standard error). None where there are fewer than three points or
    no spread in x."""

    n: int = 0
    slope: float | None = None
    intercept: float | None = None
    se: float | None = None
    low: float | None = None
    high: float | None = None


class ReviewerLearning(_Model):
    """Does a reviewer get better with feedback? (one reviewer, from ledger events)

    A *signal* decision is one on a canary or on a proposal whose hidden truth is flawed or a
    dead end (escalations left out); catching it is rejecting it or sending it back. Gate
    index k is the reviewer's k-th decision; sessions are runs of decisions with no gap longer
    than `session_gap_s`. ``lessons`` before a decision are ``feedback.shown`` items flagged
    as lessons, shown to this reviewer no later than its first look at that gate.

    ``catch_per_lesson`` is an association, not an experiment: lessons follow misses, and the
    last stretch after a reviewer's final lesson is cut off by the end of the data, so with few
    trials per reviewer the slope can sit somewhat above the true per-lesson gain (about 10% in
    a simulation of 60 trials at gain 0.03; none at 157 trials and gain 0.01). Compare feedback
    on against off (as `examples/transfer_experiment.py` does) for a causal estimate.
    """

    reviewer_kind: str | None = None
    decisions: int = 0
    signal: int = 0
    caught: int = 0
    approvals: int = 0
    rubber_stamps: int = 0
    sessions: int = 0
    feedback_shown: int = 0
    lessons: int = 0
    catch_by_gate: list[RatePoint] = Field(default_factory=list)
    catch_by_session: list[RatePoint] = Field(default_factory=list)
    rubber_stamp_by_gate: list[RatePoint] = Field(default_factory=list)
    rubber_stamp_by_session: list[RatePoint] = Field(default_factory=list)
    catch_per_lesson: Slope = Field(
        default_factory=Slope, description="caught (0/1) on lessons before: the learning rate"
    )
    catch_per_gate: Slope = Field(default_factory=Slope, description="caught on gate index")
    rubber_stamp_per_gate: Slope = Field(
        default_factory=Slope, description="rubber stamp (0/1) on gate index, over approvals"
    )


class AgentLearning(_Model):
    """Does an agent get better from reviewers' notes? (one agent, or one memory condition)

    An *attempt* is a non-canary proposal put to a gate (escalations of the same proposal are
    the same attempt). A *first pass* is an attempt that is not a revision after
    request_changes; its episode runs through its revisions until the gate approves (or edits),
    rejects or times out. Rounds to approval = attempts in an episode that ended approved.
    Trends run over the agent's episodes in time order. Where proposals carry a hidden truth
    label (headless studies) the *sound* rate of first passes measures the agent alone, apart
    from how strict its reviewers are.
    """

    attempts: int = 0
    first_passes: int = 0
    first_pass_resolved: int = 0
    first_pass_approved: int = 0
    first_pass_approval_rate: float | None = None
    approved_episodes: int = 0
    rounds_to_approval_mean: float | None = None
    notes_given_mean: float | None = Field(
        default=None, description="past review notes given per attempt (agent memory)"
    )
    first_pass_trend: list[RatePoint] = Field(default_factory=list)
    rounds_trend: list[MeanPoint] = Field(default_factory=list)
    first_pass_per_episode: Slope = Field(default_factory=Slope)
    first_pass_labelled: int = Field(0, description="first passes with a hidden truth label")
    first_pass_sound: int = 0
    first_pass_sound_rate: float | None = None
    first_pass_sound_trend: list[RatePoint] = Field(default_factory=list)
    first_pass_sound_per_episode: Slope = Field(default_factory=Slope)


class AgentMeasures(_Model):
    """Agent learning per agent (``graph/agent``) and per memory condition (``on``/``off``)."""

    by_agent: dict[str, AgentLearning] = Field(default_factory=dict)
    by_memory: dict[str, AgentLearning] = Field(default_factory=dict)


class ContributionPoint(_Model):
    """People's contribution in one slice of their decisions (time order, equal slices)."""

    index: int
    n: int
    changed: int
    rate: float | None
    low: float | None
    high: float | None
    similarity: float | None = Field(
        description="mean similarity of a change (edited payload or note) to the agent's proposal"
    )
    human_diversity: float | None = Field(
        description="1 − mean pairwise similarity among people's changes in the slice"
    )
    agent_diversity: float | None = Field(
        description="1 − mean pairwise similarity among the agent proposals they decided"
    )


class HumanConvergence(_Model):
    """Does the human converge on the AI? Contribution falling, changes growing more like the
    agent's proposals, or less diverse than the proposals they change, over time."""

    decisions: int = 0
    changed: int = 0
    trend: list[ContributionPoint] = Field(default_factory=list)
    contribution_per_decision: Slope = Field(default_factory=Slope)
    similarity_per_change: Slope = Field(default_factory=Slope)


class CoImprovement(_Model):
    """Both directions of co-improvement: reviewers learning, agents learning, convergence."""

    reviewers: dict[str, ReviewerLearning] = Field(default_factory=dict)
    agents: AgentMeasures = Field(default_factory=AgentMeasures)
    convergence: HumanConvergence = Field(default_factory=HumanConvergence)


class ResubmissionMeasures(_Model):
    """Revisions after ``request_changes`` whose substance came back unchanged or trivially
    changed (`coimprove.resubmission`). Per reviewer: the resubmitted gates they decided, with
    their last verdict on each."""

    resubmissions: int = 0
    unchanged: int = Field(0, description="flagged: unchanged or trivially changed")
    unchanged_rate: float | None = Field(None, description="unchanged / resubmissions")
    approved_unchanged: int = Field(0, description="flagged resubmissions approved (or edited)")
    approved_unchanged_rate: float | None = Field(None, description="approved / unchanged")


class Resubmissions(ResubmissionMeasures):
    """Reward capture of the collaboration: overall, per agent and per reviewer."""

    by_agent: dict[str, ResubmissionMeasures] = Field(default_factory=dict)
    by_reviewer: dict[str, ResubmissionMeasures] = Field(default_factory=dict)


class Report(GroupMeasures):
    """The whole ledger (or one run): overall measures, agreement, and every grouping."""

    run_id: str | None = None
    model: ModelUsage = Field(default_factory=ModelUsage)
    agreement: Agreement = Field(default_factory=Agreement)
    co_improvement: CoImprovement = Field(default_factory=CoImprovement)
    resubmissions: Resubmissions = Field(default_factory=Resubmissions)
    by_reviewer: dict[str, GroupMeasures] = Field(default_factory=dict)
    by_reviewer_kind: dict[str, GroupMeasures] = Field(default_factory=dict)
    by_proposal_kind: dict[str, GroupMeasures] = Field(default_factory=dict)
    by_policy: dict[str, GroupMeasures] = Field(default_factory=dict)
    by_run: dict[str, GroupMeasures] = Field(default_factory=dict)
    by_category: dict[str, GroupMeasures] = Field(default_factory=dict)
