"""The SQL behind the measures: one shared CTE prefix and a few builders.

Only ``Ledger.query`` is used, and the SQL sticks to what SQLite and PostgreSQL share (CTEs,
window functions, CASE, integer division, ``%``), reading the ledger's generated columns
(``verdict``, ``canary``, ``min_review_s`` …) instead of JSON functions. Group columns come
from a fixed whitelist, never from caller text; the only parameter is an optional run id.

Per-decision definitions (one ``gate.decided`` row each):

* ``latency_s`` = decided_at − the gate's opened_at.
* ``dwell_s`` = decided_at − the first ``gate.viewed``/``detail.viewed`` by the same reviewer
  on the same gate recorded before the decision (lower seq); 0 if they never viewed it.
* rubber stamp = verdict approve, dwell below the gate's ``min_review_s``, and either the
  proposal had no detail or that reviewer never opened it before deciding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

GroupBy = Literal["reviewer", "reviewer_kind", "proposal_kind", "policy", "run", "category"]
GROUP_BYS: tuple[GroupBy, ...] = get_args(GroupBy)

#: The key of the single group when measures are not grouped.
OVERALL = "all"
#: The key of a group whose column is missing (e.g. a gate with no category).
MISSING = "(none)"
#: Reviewer kinds whose decisions count as people's contribution: scripted reviewers stand in
#: for people in headless runs; model reviewers (the AI-only baseline) are left out.
CONTRIBUTOR_KINDS: tuple[str, ...] = ("human", "scripted")

# group_by -> (column in the `dec`/`gates` CTEs, whether the column belongs to the gate)
_GROUP_COLUMNS: dict[GroupBy | None, tuple[str, bool]] = {
    None: ("", True),
    "reviewer": ("reviewer", False),
    "reviewer_kind": ("reviewer_kind", False),
    "proposal_kind": ("proposal_kind", True),
    "policy": ("policy", True),
    "run": ("run_id", True),
    "category": ("category", True),
}

# Every join below is on an indexed column of `events` (seq, or gate_id/run_id + type) or a
# correlated lookup through one, so plans never depend on the database indexing a CTE.
#
# gates: one row per gate with its gate.opened columns, first resolution and timeout flag.
# decisions: one row per gate.decided with its gate's columns.
# dec: decisions plus latency, dwell and whether the reviewer opened the detail beforehand.
# The columns of one gate, read from its gate.opened event `o`, its first gate.resolved `r`
# and whether it ever timed out.
_GATE_COLUMNS = """o.gate_id, o.run_id, o.at AS opened_at, o.proposal_kind, o.policy, o.category,
           CASE WHEN o.canary = 1 THEN 1 ELSE 0 END AS canary, o.truth,
           CASE WHEN EXISTS (
               SELECT 1 FROM events t WHERE t.gate_id = o.gate_id AND t.type = 'gate.timed_out'
           ) THEN 1 ELSE 0 END AS timed_out,
           CASE WHEN r.seq IS NULL THEN 0 ELSE 1 END AS resolved,
           r.at AS resolved_at, r.outcome"""
_GATE_RESOLUTION = """LEFT JOIN events r ON r.seq = (
        SELECT MIN(x.seq) FROM events x WHERE x.gate_id = o.gate_id AND x.type = 'gate.resolved'
    )"""

_BASE = f"""
WITH gates AS (
    SELECT {_GATE_COLUMNS}
    FROM events o
    {_GATE_RESOLUTION}
    WHERE o.type = 'gate.opened' {{run_filter}}
),
decisions AS (
    SELECT d.seq, d.gate_id, d.actor AS reviewer, d.reviewer_kind, d.verdict,
           d.at AS decided_at, o.run_id, o.at AS opened_at, o.proposal_kind, o.policy,
           o.category, CASE WHEN o.has_detail = 1 THEN 1 ELSE 0 END AS has_detail,
           COALESCE(o.min_review_s, 0) AS min_review_s,
           CASE WHEN o.canary = 1 THEN 1 ELSE 0 END AS canary, o.truth
    FROM events d JOIN events o ON o.gate_id = d.gate_id AND o.type = 'gate.opened'
    WHERE d.type = 'gate.decided' {{run_filter}}
),
dec AS (
    SELECT d.*, d.decided_at - d.opened_at AS latency_s,
           COALESCE(d.decided_at - (
               SELECT MIN(v.at) FROM events v
               WHERE v.gate_id = d.gate_id AND v.type IN ('gate.viewed', 'detail.viewed')
                 AND v.actor = d.reviewer AND v.seq < d.seq
           ), 0) AS dwell_s,
           CASE WHEN EXISTS (
               SELECT 1 FROM events v
               WHERE v.gate_id = d.gate_id AND v.type = 'detail.viewed'
                 AND v.actor = d.reviewer AND v.seq < d.seq
           ) THEN 1 ELSE 0 END AS detail_opened
    FROM decisions d
)"""

_STOPPING = "('reject', 'request_changes')"
_CONTRIBUTORS = "(" + ", ".join(f"'{k}'" for k in CONTRIBUTOR_KINDS) + ")"
PERCENTILES: tuple[int, ...] = (50, 90, 99)


def _base(run_id: str | None) -> tuple[str, list[Any]]:
    if run_id is None:
        return _BASE.format(run_filter=""), []
    return _BASE.format(run_filter="AND o.run_id = ?"), [run_id, run_id]


def _dimensions(group_bys: Sequence[GroupBy | None]) -> list[tuple[str, str, bool]]:
    """(dimension name, SQL group expression, gate-level?) per grouping, from the whitelist."""
    if not group_bys:
        raise ValueError("at least one grouping is needed")
    out = []
    for group_by in group_bys:
        if group_by not in _GROUP_COLUMNS:
            raise ValueError(f"cannot group measures by {group_by!r}; choose one of {GROUP_BYS}")
        column, gate_level = _GROUP_COLUMNS[group_by]
        expr = f"COALESCE({column}, '{MISSING}')" if column else f"'{OVERALL}'"
        out.append((dimension(group_by), expr, gate_level))
    return out


def dimension(group_by: GroupBy | None) -> str:
    """The name rows of `group_by` carry in their ``dim`` column."""
    return OVERALL if group_by is None else group_by


def _tagged(group_bys: Sequence[GroupBy | None], source: str) -> str:
    """Every row of `source` once per grouping, tagged with ``dim`` and its group ``g``."""
    return "\n    UNION ALL\n    ".join(
        f"SELECT '{dim}' AS dim, {expr} AS g, {source}.* FROM {source}"
        for dim, expr, _ in _dimensions(group_bys)
    )


def _percentile(rank: str, value: str, p: int) -> str:
    """Linear interpolation between order statistics (as ``percentile_cont``) inside GROUP BY.

    With ``n`` values the position is ``h = (n − 1)·p/100`` (0-based); integer arithmetic
    gives ``floor(h)`` and its fraction portably.
    """
    lo = f"((n - 1) * {p}) / 100"
    frac = f"(((n - 1) * {p}) % 100) / 100.0"
    return (
        f"SUM(CASE WHEN {rank} = {lo} + 1 THEN {value} * (1 - {frac}) "
        f"WHEN {rank} = {lo} + 2 THEN {value} * {frac} ELSE 0 END)"
    )


def _count(condition: str) -> str:
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


_RUBBER = "verdict = 'approve' AND dwell_s < min_review_s AND (has_detail = 0 OR detail_opened = 0)"

#: Columns of `decision_query`, in order.
DECISION_COLUMNS: tuple[str, ...] = (
    "dim",
    "g",
    "decisions",
    "approve",
    "edit",
    "reject",
    "request_changes",
    "escalate",
    "rubber_stamps",
    "canary_n",
    "canary_caught",
    "noise_n",
    "false_alarms",
    "sound_n",
    "sound_false_alarms",
    "contrib_n",
    "contrib_changed",
    "latency_mean",
    "latency_max",
    *(f"latency_p{p}" for p in PERCENTILES),
    "dwell_mean",
    "dwell_max",
    *(f"dwell_p{p}" for p in PERCENTILES),
)


def decision_query(
    group_bys: Sequence[GroupBy | None], run_id: str | None
) -> tuple[str, list[Any]]:
    """Decision-level counts, rates' numerators and latency/dwell percentiles per group.

    One statement for all `group_bys`: rows are ``(dim, g, …)`` as in `DECISION_COLUMNS`.
    """
    base, params = _base(run_id)
    measures = [
        "COUNT(*)",
        *(_count(f"verdict = '{v}'") for v in DECISION_COLUMNS[3:8]),
        _count(_RUBBER),
        _count("canary = 1 AND verdict <> 'escalate'"),
        _count(f"canary = 1 AND verdict IN {_STOPPING}"),
        _count("canary = 0 AND verdict <> 'escalate'"),
        _count(f"canary = 0 AND verdict IN {_STOPPING}"),
        _count("canary = 0 AND truth = 'sound' AND verdict <> 'escalate'"),
        _count(f"canary = 0 AND truth = 'sound' AND verdict IN {_STOPPING}"),
        _count(f"reviewer_kind IN {_CONTRIBUTORS}"),
        _count(f"reviewer_kind IN {_CONTRIBUTORS} AND verdict IN ('edit', 'request_changes')"),
        "AVG(latency_s)",
        "MAX(latency_s)",
        *(_percentile("r_lat", "latency_s", p) for p in PERCENTILES),
        "AVG(dwell_s)",
        "MAX(dwell_s)",
        *(_percentile("r_dwell", "dwell_s", p) for p in PERCENTILES),
    ]
    sql = f"""{base},
tagged AS (
    {_tagged(group_bys, "dec")}
),
ranked AS (
    SELECT tagged.*,
           ROW_NUMBER() OVER (PARTITION BY dim, g ORDER BY latency_s, seq) AS r_lat,
           ROW_NUMBER() OVER (PARTITION BY dim, g ORDER BY dwell_s, seq) AS r_dwell,
           COUNT(*) OVER (PARTITION BY dim, g) AS n
    FROM tagged
)
SELECT dim, g, {", ".join(measures)}
FROM ranked GROUP BY dim, g ORDER BY dim, g"""
    return sql, params


# A planted dead end (not a canary) whose gate was decided rather than passed upwards.
_DEAD_END = "truth = 'dead_end' AND canary = 0 AND resolved = 1 AND outcome <> 'escalate'"


#: Columns of `gate_query`, in order.
GATE_COLUMNS: tuple[str, ...] = (
    "dim",
    "g",
    "gates",
    "resolved",
    "timed_out",
    "dead_ends",
    "dead_ends_stopped",
    "wait_share",
    "wait_runs",
)


def gate_query(group_bys: Sequence[GroupBy | None], run_id: str | None) -> tuple[str, list[Any]]:
    """Gate-level counts per group, and the share of finished runs' time spent at its gates.

    A gate belongs to the group of its own column (policy, run …); for reviewer groupings it
    belongs to every reviewer (kind) that decided it at least once. Rows as `GATE_COLUMNS`.
    """
    base, params = _base(run_id)
    members = []
    for dim, expr, gate_level in _dimensions(group_bys):
        if gate_level:
            members.append(f"SELECT '{dim}' AS dim, {expr} AS g, gates.* FROM gates")
        else:
            members.append(
                f"""SELECT m.dim, m.g, {_GATE_COLUMNS}
    FROM (SELECT DISTINCT '{dim}' AS dim, {expr} AS g, gate_id FROM decisions) m
    JOIN events o ON o.gate_id = m.gate_id AND o.type = 'gate.opened'
    {_GATE_RESOLUTION}"""
            )
    union = "\n    UNION ALL\n    ".join(members)
    sql = f"""{base},
members AS (
    {union}
),
waits AS (
    SELECT dim, g, run_id, SUM(resolved_at - opened_at) AS wait
    FROM members WHERE resolved = 1 GROUP BY dim, g, run_id
),
run_waits AS (
    SELECT w.dim, w.g, w.wait,
           (SELECT MIN(e.at) FROM events e
            WHERE e.run_id = w.run_id AND e.type = 'run.started') AS started_at,
           (SELECT MAX(e.at) FROM events e
            WHERE e.run_id = w.run_id AND e.type = 'run.finished') AS finished_at
    FROM waits w
),
shares AS (
    SELECT dim, g, AVG(wait / (finished_at - started_at)) AS share, COUNT(*) AS runs
    FROM run_waits WHERE finished_at > started_at GROUP BY dim, g
),
counts AS (
    SELECT dim, g, COUNT(*) AS gates, SUM(resolved) AS resolved, SUM(timed_out) AS timed_out,
           {_count(_DEAD_END)} AS dead_ends,
           {_count(f"{_DEAD_END} AND outcome IN {_STOPPING}")} AS dead_ends_stopped
    FROM members GROUP BY dim, g
)
SELECT c.dim, c.g, c.gates, c.resolved, c.timed_out, c.dead_ends, c.dead_ends_stopped,
       s.share, COALESCE(s.runs, 0)
FROM counts c LEFT JOIN shares s ON s.dim = c.dim AND s.g = c.g
ORDER BY c.dim, c.g"""
    return sql, params


def trend_query(
    group_bys: Sequence[GroupBy | None], run_id: str | None, buckets: int
) -> tuple[str, list[Any]]:
    """People's decisions per group in time order, cut into `buckets` equal slices (NTILE).

    Rows are ``(dim, g, bucket, decisions, changed, first decided_at, last decided_at)``.
    """
    if not isinstance(buckets, int) or isinstance(buckets, bool) or buckets < 1:
        raise ValueError(f"trend buckets must be a positive integer, not {buckets!r}")
    base, params = _base(run_id)
    sql = f"""{base},
people AS (
    SELECT seq, decided_at, reviewer, reviewer_kind, run_id, proposal_kind, policy, category,
           CASE WHEN verdict IN ('edit', 'request_changes') THEN 1 ELSE 0 END AS changed
    FROM decisions WHERE reviewer_kind IN {_CONTRIBUTORS}
),
tagged AS (
    {_tagged(group_bys, "people")}
),
sliced AS (
    SELECT dim, g, changed, decided_at,
           NTILE({int(buckets)}) OVER (PARTITION BY dim, g ORDER BY decided_at, seq) AS bucket
    FROM tagged
)
SELECT dim, g, bucket, COUNT(*), SUM(changed), MIN(decided_at), MAX(decided_at)
FROM sliced GROUP BY dim, g, bucket ORDER BY dim, g, bucket"""
    return sql, params


def _agreement_prefix(run_id: str | None) -> tuple[str, list[Any]]:
    """Gates decided by two or more reviewers, with each reviewer's last verdict on the gate
    (``qd``): a reviewer who decided a gate twice (its first version, then an edited one) is
    one rater of it, not two."""
    base, params = _base(run_id)
    return (
        f"""{base},
last AS (
    SELECT gate_id, reviewer, verdict,
           ROW_NUMBER() OVER (PARTITION BY gate_id, reviewer ORDER BY seq DESC) AS k
    FROM decisions
),
multi AS (SELECT gate_id FROM last WHERE k = 1 GROUP BY gate_id HAVING COUNT(*) >= 2),
qd AS (
    SELECT l.gate_id, l.reviewer, l.verdict
    FROM last l JOIN multi m ON m.gate_id = l.gate_id
    WHERE l.k = 1
)""",
        params,
    )


def agreement_cells_query(run_id: str | None) -> tuple[str, list[Any]]:
    """(gate, verdict, count) over gates with two or more decisions: Fleiss' table."""
    prefix, params = _agreement_prefix(run_id)
    sql = f"""{prefix}
SELECT gate_id, verdict, COUNT(*) FROM qd GROUP BY gate_id, verdict ORDER BY gate_id, verdict"""
    return sql, params


def agreement_pairs_query(run_id: str | None) -> tuple[str, list[Any]]:
    """(reviewer a, reviewer b, verdict a, verdict b, count) with a < b: Cohen's tables."""
    prefix, params = _agreement_prefix(run_id)
    sql = f"""{prefix}
SELECT x.reviewer, y.reviewer, x.verdict, y.verdict, COUNT(*)
FROM qd x JOIN qd y ON x.gate_id = y.gate_id AND x.reviewer < y.reviewer
GROUP BY x.reviewer, y.reviewer, x.verdict, y.verdict
ORDER BY x.reviewer, y.reviewer, x.verdict, y.verdict"""
    return sql, params


#: Columns of `decision_rows_query`, in order.
DECISION_ROW_COLUMNS: tuple[str, ...] = (
    "seq",
    "gate_id",
    "run_id",
    "reviewer",
    "reviewer_kind",
    "verdict",
    "opened_at",
    "decided_at",
    "first_view_at",
    "latency_s",
    "dwell_s",
    "rubber_stamp",
    "canary",
    "truth",
)


def decision_rows_query(run_id: str | None = None) -> tuple[str, list[Any]]:
    """One row per decision with the inputs of the decision-level measures, defined exactly as
    in the aggregates above (for confidence intervals and plots that need single decisions).

    ``first_view_at`` is when the reviewer first looked (``decided_at`` if it never did);
    ``rubber_stamp`` is 1 for a rubber-stamp approval. Rows as `DECISION_ROW_COLUMNS`.
    """
    base, params = _base(run_id)
    sql = f"""{base}
SELECT seq, gate_id, run_id, reviewer, reviewer_kind, verdict, opened_at, decided_at,
       decided_at - dwell_s, latency_s, dwell_s,
       CASE WHEN {_RUBBER} THEN 1 ELSE 0 END, canary, truth
FROM dec ORDER BY seq"""
    return sql, params


#: Columns of `gate_rows_query`, in order.
GATE_ROW_COLUMNS: tuple[str, ...] = (
    "gate_id",
    "run_id",
    "opened_at",
    "canary",
    "truth",
    "timed_out",
    "resolved",
    "resolved_at",
    "outcome",
)


def gate_rows_query(run_id: str | None = None) -> tuple[str, list[Any]]:
    """One row per gate: when it opened, its hidden truth and how (and when) it resolved."""
    base, params = _base(run_id)
    sql = f"""{base}
SELECT gate_id, run_id, opened_at, canary, truth, timed_out, resolved, resolved_at, outcome
FROM gates ORDER BY opened_at, gate_id"""
    return sql, params
