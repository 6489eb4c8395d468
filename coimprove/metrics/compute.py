"""Assemble measures from the aggregated rows that `coimprove.metrics.sql` returns."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from coimprove.metrics import sql
from coimprove.metrics.convergence import human_convergence
from coimprove.metrics.learning import agent_learning, reviewer_learning
from coimprove.metrics.models import (
    Agreement,
    CanaryMeasures,
    CoImprovement,
    DeadEnd,
    Distribution,
    GroupMeasures,
    HumanContribution,
    ModelUsage,
    OverrideRates,
    PairAgreement,
    Report,
    Sensitivity,
    TrendBucket,
)
from coimprove.metrics.resubmissions import resubmissions
from coimprove.metrics.sql import OVERALL, GroupBy
from coimprove.metrics.stats import cohen_kappa, d_prime, d_prime_interval, fleiss_kappa, rate
from coimprove.model import VERDICTS
from coimprove.protocols import Ledger

#: How many time slices the human-contribution trend has (fewer when there are fewer decisions).
TREND_BUCKETS = 10


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def _i(value: Any) -> int:
    return 0 if value is None else int(value)


def _distribution(row: dict[str, Any], name: str, n: int) -> Distribution:
    if n == 0:
        return Distribution()
    return Distribution(
        n=n,
        mean=_f(row[f"{name}_mean"]),
        max=_f(row[f"{name}_max"]),
        **{f"p{p}": _f(row[f"{name}_p{p}"]) for p in sql.PERCENTILES},
    )


def _sensitivity(hits: int, n_signal: int, false_alarms: int, n_noise: int) -> Sensitivity:
    interval = d_prime_interval(hits, n_signal, false_alarms, n_noise)
    return Sensitivity(
        value=d_prime(hits, n_signal, false_alarms, n_noise),
        low=None if interval is None else interval[0],
        high=None if interval is None else interval[1],
    )


def _decision_measures(row: dict[str, Any]) -> dict[str, Any]:
    n = _i(row["decisions"])
    verdicts = {v: _i(row[v]) for v in VERDICTS}
    approvals = verdicts["approve"] + verdicts["edit"]
    canary_n, caught = _i(row["canary_n"]), _i(row["canary_caught"])
    noise_n, false_alarms = _i(row["noise_n"]), _i(row["false_alarms"])
    sound_n, sound_alarms = _i(row["sound_n"]), _i(row["sound_false_alarms"])
    contrib_n, changed = _i(row["contrib_n"]), _i(row["contrib_changed"])
    return {
        "decisions": n,
        "verdicts": verdicts,
        "latency_s": _distribution(row, "latency", n),
        "dwell_s": _distribution(row, "dwell", n),
        "approval_rate": rate(approvals, n),
        "rubber_stamps": _i(row["rubber_stamps"]),
        "rubber_stamp_rate": rate(_i(row["rubber_stamps"]), approvals),
        "canary": CanaryMeasures(
            n=canary_n,
            caught=caught,
            catch_rate=rate(caught, canary_n),
            non_canary=noise_n,
            false_alarms=false_alarms,
            false_alarm_rate=rate(false_alarms, noise_n),
            sound=sound_n,
            sound_false_alarms=sound_alarms,
            sound_false_alarm_rate=rate(sound_alarms, sound_n),
            d_prime_sound=_sensitivity(caught, canary_n, sound_alarms, sound_n),
            d_prime_lower_bound=_sensitivity(caught, canary_n, false_alarms, noise_n),
        ),
        "override": {
            v: rate(verdicts[v], n) for v in ("edit", "reject", "request_changes", "escalate")
        },
        "human_contribution": {
            "decisions": contrib_n,
            "changed": changed,
            "rate": rate(changed, contrib_n),
        },
    }


def _rows(ledger: Ledger, query: tuple[str, list[Any]]) -> list[tuple[Any, ...]]:
    text, params = query
    return ledger.query(text, params)


def _summaries(
    ledger: Ledger,
    group_bys: Sequence[GroupBy | None],
    run_id: str | None,
    trend_buckets: int,
) -> dict[str, dict[str, GroupMeasures]]:
    """Measures for several groupings at once (three statements in all), keyed by dimension."""
    decision_rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in _rows(ledger, sql.decision_query(group_bys, run_id)):
        decision_rows[r[0], r[1]] = dict(zip(sql.DECISION_COLUMNS, r, strict=True))
    gate_rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in _rows(ledger, sql.gate_query(group_bys, run_id)):
        gate_rows[r[0], r[1]] = dict(zip(sql.GATE_COLUMNS, r, strict=True))
    trends: dict[tuple[str, str], list[TrendBucket]] = defaultdict(list)
    for dim, g, bucket, n, changed, first, last in _rows(
        ledger, sql.trend_query(group_bys, run_id, trend_buckets)
    ):
        trends[dim, g].append(
            TrendBucket(
                bucket=int(bucket),
                decisions=int(n),
                changed=int(changed),
                rate=rate(int(changed), int(n)),
                from_at=float(first),
                to_at=float(last),
            )
        )
    out: dict[str, dict[str, GroupMeasures]] = {sql.dimension(gb): {} for gb in group_bys}
    keys = set(decision_rows) | set(gate_rows)
    if None in group_bys:
        keys.add((OVERALL, OVERALL))
    for key in sorted(keys):
        out[key[0]][key[1]] = _group(decision_rows.get(key), gate_rows.get(key), trends[key])
    return out


def _group(
    decision_row: dict[str, Any] | None,
    gate_row: dict[str, Any] | None,
    trend: list[TrendBucket],
) -> GroupMeasures:
    fields: dict[str, Any] = {}
    timeout: float | None = None
    if decision_row is not None:
        fields = _decision_measures(decision_row)
    if gate_row is not None:
        gates, resolved = _i(gate_row["gates"]), _i(gate_row["resolved"])
        dead, stopped = _i(gate_row["dead_ends"]), _i(gate_row["dead_ends_stopped"])
        timeout = rate(_i(gate_row["timed_out"]), resolved)
        fields |= {
            "gates": gates,
            "decided": resolved,
            "pending": gates - resolved,
            "dead_end": DeadEnd(n=dead, stopped=stopped, rate=rate(stopped, dead)),
            "human_wait_share": _f(gate_row["wait_share"]),
            "wait_share_runs": _i(gate_row["wait_runs"]),
        }
    fields["override"] = OverrideRates(**fields.get("override", {}), timeout=timeout)
    fields["human_contribution"] = HumanContribution(
        **fields.get("human_contribution", {}), trend=trend
    )
    return GroupMeasures(**fields)


def summarize(
    ledger: Ledger,
    group_by: GroupBy | None = None,
    *,
    run_id: str | None = None,
    trend_buckets: int = TREND_BUCKETS,
) -> dict[str, GroupMeasures]:
    """Every measure per group, from the ledger's events alone.

    ``group_by`` is one of ``reviewer`` (the deciding actor), ``reviewer_kind``,
    ``proposal_kind``, ``policy``, ``run`` or ``category``; None gives one group keyed
    ``"all"`` (present even for an empty ledger). ``run_id`` limits everything to one run.
    Groups are keyed by their value (``"(none)"`` when the value is missing), sorted.
    """
    dim = sql.dimension(group_by)
    return _summaries(ledger, [group_by], run_id, trend_buckets)[dim]


def agreement(ledger: Ledger, *, run_id: str | None = None) -> Agreement:
    """Fleiss' kappa over gates decided by two or more reviewers, and Cohen's kappa per pair
    (each reviewer rates a gate once: with their last verdict on it)."""
    cells: dict[str, dict[str, int]] = defaultdict(dict)
    for gate_id, verdict, count in _rows(ledger, sql.agreement_cells_query(run_id)):
        cells[gate_id][verdict] = int(count)
    categories = sorted({v for per_gate in cells.values() for v in per_gate})
    table = [[per_gate.get(c, 0) for c in categories] for per_gate in cells.values()]

    pair_tables: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
    for a, b, va, vb, count in _rows(ledger, sql.agreement_pairs_query(run_id)):
        pair_tables[f"{a}|{b}"][(va, vb)] = int(count)
    pairs = {}
    for key, counts in sorted(pair_tables.items()):
        n = sum(counts.values())
        same = sum(c for (va, vb), c in counts.items() if va == vb)
        pairs[key] = PairAgreement(n=n, observed=rate(same, n), kappa=cohen_kappa(counts))
    return Agreement(
        gates=len(table),
        decisions=sum(map(sum, table)),
        fleiss_kappa=fleiss_kappa(table),
        pairs=pairs,
    )


_GROUPINGS: dict[str, GroupBy] = {
    "by_reviewer": "reviewer",
    "by_reviewer_kind": "reviewer_kind",
    "by_proposal_kind": "proposal_kind",
    "by_policy": "policy",
    "by_run": "run",
    "by_category": "category",
}


_MODEL_SQL = """
SELECT COALESCE(actor, '(unknown)'), COUNT(*), COALESCE(SUM(latency_s), 0),
       COALESCE(SUM(tokens), 0)
FROM events WHERE type = 'model.called' {scope} GROUP BY COALESCE(actor, '(unknown)')
"""

_WAIT_SQL = """
SELECT COALESCE(SUM(r.at - o.at), 0) FROM events o JOIN events r
  ON r.gate_id = o.gate_id AND r.type = 'gate.resolved'
WHERE o.type = 'gate.opened' {scope}
"""


def model_usage(ledger: Ledger, *, run_id: str | None = None) -> ModelUsage:
    """Model calls, seconds and tokens (per actor) from ``model.called`` events, and the time
    runs waited on reviewers, so a report can show model time beside human time."""
    params = [run_id] if run_id else []
    by_actor: dict[str, dict[str, float]] = {}
    calls = 0
    seconds = 0.0
    tokens = 0
    for actor, n, secs, toks in ledger.query(
        _MODEL_SQL.format(scope="AND run_id = ?" if run_id else ""), params
    ):
        by_actor[str(actor)] = {"calls": n, "seconds": round(float(secs), 3), "tokens": toks}
        calls, seconds, tokens = calls + n, seconds + float(secs), tokens + int(toks)
    wait = ledger.query(_WAIT_SQL.format(scope="AND o.run_id = ?" if run_id else ""), params)
    return ModelUsage(
        calls=calls,
        seconds=round(seconds, 3),
        tokens=tokens,
        by_actor=by_actor,
        human_wait_s=round(float(wait[0][0]), 3),
    )


def co_improvement(
    ledger: Ledger, *, run_id: str | None = None, trend_buckets: int = TREND_BUCKETS
) -> CoImprovement:
    """Both directions: reviewers learning from feedback, agents learning from notes, and
    whether people's contribution converges on the agent's (see `CoImprovement`)."""
    return CoImprovement(
        reviewers=reviewer_learning(ledger, run_id=run_id, buckets=trend_buckets),
        agents=agent_learning(ledger, run_id=run_id, buckets=trend_buckets),
        convergence=human_convergence(ledger, run_id=run_id, buckets=trend_buckets),
    )


def report(
    ledger: Ledger, *, run_id: str | None = None, trend_buckets: int = TREND_BUCKETS
) -> Report:
    """The whole report: overall measures, agreement and every grouping (``coimprove report``).

    Five read-only statements for the oversight measures, however many events the ledger
    holds, and a handful more for `co_improvement`.
    """
    dims = _summaries(ledger, [None, *_GROUPINGS.values()], run_id, trend_buckets)
    return Report(
        **dims[OVERALL][OVERALL].model_dump(),
        run_id=run_id,
        model=model_usage(ledger, run_id=run_id),
        agreement=agreement(ledger, run_id=run_id),
        co_improvement=co_improvement(ledger, run_id=run_id, trend_buckets=trend_buckets),
        resubmissions=resubmissions(ledger, run_id=run_id),
        **{name: dims[sql.dimension(group_by)] for name, group_by in _GROUPINGS.items()},
    )
