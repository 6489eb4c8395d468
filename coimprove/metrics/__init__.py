"""Oversight measures computed from the ledger's events alone (never from runner memory).

``report(ledger)`` gives everything ``coimprove report --json`` prints; ``summarize(ledger,
group_by)`` gives the measures per reviewer, reviewer kind, proposal kind, policy, run or
category. All of it is SQL aggregates over ``Ledger.query``; see `coimprove.metrics.sql` for
the exact definitions and `coimprove.metrics.stats` for d′ and kappa.
"""

from coimprove.metrics.compute import TREND_BUCKETS, agreement, model_usage, report, summarize
from coimprove.metrics.models import (
    Agreement,
    CanaryMeasures,
    DeadEnd,
    Distribution,
    GroupMeasures,
    HumanContribution,
    ModelUsage,
    OverrideRates,
    PairAgreement,
    Report,
    TrendBucket,
)
from coimprove.metrics.sql import CONTRIBUTOR_KINDS, GROUP_BYS, MISSING, OVERALL, GroupBy
from coimprove.metrics.stats import cohen_kappa, d_prime, fleiss_kappa, rate

__all__ = [
    "CONTRIBUTOR_KINDS",
    "GROUP_BYS",
    "MISSING",
    "OVERALL",
    "TREND_BUCKETS",
    "Agreement",
    "CanaryMeasures",
    "DeadEnd",
    "Distribution",
    "GroupBy",
    "GroupMeasures",
    "HumanContribution",
    "ModelUsage",
    "OverrideRates",
    "PairAgreement",
    "Report",
    "TrendBucket",
    "agreement",
    "cohen_kappa",
    "d_prime",
    "fleiss_kappa",
    "model_usage",
    "rate",
    "report",
    "summarize",
]
