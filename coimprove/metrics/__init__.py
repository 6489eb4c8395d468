"""Oversight measures computed from the ledger's events alone (never from runner memory).

``report(ledger)`` gives everything ``coimprove report --json`` prints; ``summarize(ledger,
group_by)`` gives the measures per reviewer, reviewer kind, proposal kind, policy, run or
category. All of it is SQL aggregates over ``Ledger.query``; see `coimprove.metrics.sql` for
the exact definitions and `coimprove.metrics.stats` for d′ and kappa.
"""

from coimprove.metrics.compute import (
    TREND_BUCKETS,
    agreement,
    co_improvement,
    model_usage,
    report,
    summarize,
)
from coimprove.metrics.convergence import human_convergence, text_similarity
from coimprove.metrics.learning import SESSION_GAP_S, agent_learning, reviewer_learning
from coimprove.metrics.models import (
    AgentLearning,
    AgentMeasures,
    Agreement,
    CanaryMeasures,
    CoImprovement,
    ContributionPoint,
    DeadEnd,
    Distribution,
    GroupMeasures,
    HumanContribution,
    HumanConvergence,
    MeanPoint,
    ModelUsage,
    OverrideRates,
    PairAgreement,
    RatePoint,
    Report,
    ResubmissionMeasures,
    Resubmissions,
    ReviewerLearning,
    Sensitivity,
    Slope,
    TrendBucket,
)
from coimprove.metrics.resubmissions import resubmissions
from coimprove.metrics.sql import CONTRIBUTOR_KINDS, GROUP_BYS, MISSING, OVERALL, GroupBy
from coimprove.metrics.stats import (
    cohen_kappa,
    d_prime,
    d_prime_interval,
    fleiss_kappa,
    least_squares,
    rate,
    wilson,
)

__all__ = [
    "CONTRIBUTOR_KINDS",
    "GROUP_BYS",
    "MISSING",
    "OVERALL",
    "SESSION_GAP_S",
    "TREND_BUCKETS",
    "AgentLearning",
    "AgentMeasures",
    "Agreement",
    "CanaryMeasures",
    "CoImprovement",
    "ContributionPoint",
    "DeadEnd",
    "Distribution",
    "GroupBy",
    "GroupMeasures",
    "HumanContribution",
    "HumanConvergence",
    "MeanPoint",
    "ModelUsage",
    "OverrideRates",
    "PairAgreement",
    "RatePoint",
    "Report",
    "ResubmissionMeasures",
    "Resubmissions",
    "ReviewerLearning",
    "Sensitivity",
    "Slope",
    "TrendBucket",
    "agent_learning",
    "agreement",
    "co_improvement",
    "cohen_kappa",
    "d_prime",
    "d_prime_interval",
    "fleiss_kappa",
    "human_convergence",
    "least_squares",
    "model_usage",
    "rate",
    "report",
    "resubmissions",
    "reviewer_learning",
    "summarize",
    "text_similarity",
    "wilson",
]
