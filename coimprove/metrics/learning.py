"""Both directions of learning, from ledger events: do reviewers improve with feedback, do
agents improve from reviewers' notes?

The SQL reads only generated columns and the raw ``data`` text (parsed here, not with JSON
functions), so it runs unchanged on any ledger with the `coimprove.ledger` schema. Time
ordering, sessions, episodes and fits are computed from the returned rows.
"""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from coimprove.metrics.models import AgentLearning, AgentMeasures, RatePoint, ReviewerLearning
from coimprove.metrics.stats import rate
from coimprove.metrics.trends import Trial, mean_trend, rate_point, rate_trend, slope
from coimprove.protocols import Ledger

#: A reviewer's new session starts after this long (simulated or real seconds) without deciding.
SESSION_GAP_S = 1800.0

_STOPPING = ("reject", "request_changes")
_SIGNAL_TRUTHS = ("flawed", "dead_end")

_DECISIONS_SQL = """
SELECT d.seq, d.actor, d.reviewer_kind, d.verdict, d.at,
       CASE WHEN o.canary = 1 THEN 1 ELSE 0 END, o.truth,
       COALESCE(o.min_review_s, 0), CASE WHEN o.has_detail = 1 THEN 1 ELSE 0 END,
       (SELECT MIN(v.at) FROM events v
        WHERE v.gate_id = d.gate_id AND v.type IN ('gate.viewed', 'detail.viewed')
          AND v.actor = d.actor AND v.seq < d.seq),
       CASE WHEN EXISTS (
           SELECT 1 FROM events v WHERE v.gate_id = d.gate_id AND v.type = 'detail.viewed'
             AND v.actor = d.actor AND v.seq < d.seq
       ) THEN 1 ELSE 0 END
FROM events d JOIN events o ON o.gate_id = d.gate_id AND o.type = 'gate.opened'
WHERE d.type = 'gate.decided' {scope}
ORDER BY d.seq
"""

_FEEDBACK_SQL = "SELECT actor, at, data FROM events WHERE type = 'feedback.shown' ORDER BY seq"

_ATTEMPTS_SQL = """
SELECT o.seq, o.run_id, o.at, CASE WHEN o.canary = 1 THEN 1 ELSE 0 END, o.data, r.outcome,
       o.truth
FROM events o
LEFT JOIN events r ON r.seq = (
    SELECT MIN(x.seq) FROM events x WHERE x.gate_id = o.gate_id AND x.type = 'gate.resolved'
)
WHERE o.type = 'gate.opened' {scope}
ORDER BY o.seq
"""

_RUNS_SQL = "SELECT run_id, data FROM (SELECT * FROM events WHERE type = 'run.started') s {scope}"


def _json(value: Any) -> dict[str, Any]:
    """Event data as a dict (text from SQLite; a JSON backend may already give a dict)."""
    if isinstance(value, dict):
        return value
    parsed = json.loads(value) if value else {}
    return parsed if isinstance(parsed, dict) else {}


def _scope(run_id: str | None, alias: str) -> tuple[str, list[Any]]:
    return (f"AND {alias}.run_id = ?", [run_id]) if run_id else ("", [])


# -- reviewers ---------------------------------------------------------------------------------


@dataclass
class _Decision:
    seq: int
    at: float
    verdict: str
    signal: bool
    rubber: bool
    looked_at: float


def _lesson_times(ledger: Ledger) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Per reviewer: sorted times of lessons shown, and how many feedback items were shown."""
    lessons: dict[str, list[float]] = defaultdict(list)
    shown: dict[str, int] = defaultdict(int)
    for actor, at, data in ledger.query(_FEEDBACK_SQL):
        shown[str(actor)] += 1
        if _json(data).get("lesson"):
            lessons[str(actor)].append(float(at))
    for times in lessons.values():
        times.sort()
    return lessons, shown


def reviewer_learning(
    ledger: Ledger,
    *,
    run_id: str | None = None,
    buckets: int = 10,
    session_gap_s: float = SESSION_GAP_S,
) -> dict[str, ReviewerLearning]:
    """Per reviewer: catch and rubber-stamp trends by gate index and session, and the slope of
    catching on lessons seen so far (the learning rate a learning profile was given).

    See `ReviewerLearning` for the definitions. Lessons count ``feedback.shown`` items from any
    run (what the reviewer has learnt is not per run), decisions only those of `run_id`.
    """
    scope, params = _scope(run_id, "d")
    per: dict[str, list[_Decision]] = defaultdict(list)
    kinds: dict[str, str | None] = {}
    for row in ledger.query(_DECISIONS_SQL.format(scope=scope), params):
        seq, actor, kind, verdict, at, canary, truth, min_review, has_detail, first, detail = row
        at = float(at)
        looked = float(first) if first is not None else at
        dwell = at - looked
        rubber = verdict == "approve" and dwell < float(min_review) and not (has_detail and detail)
        signal = verdict != "escalate" and (bool(canary) or truth in _SIGNAL_TRUTHS)
        per[str(actor)].append(_Decision(int(seq), at, str(verdict), signal, rubber, looked))
        kinds[str(actor)] = kind
    lessons, shown = _lesson_times(ledger)
    out: dict[str, ReviewerLearning] = {}
    for reviewer in sorted(per):
        decisions = sorted(per[reviewer], key=lambda d: (d.at, d.seq))
        out[reviewer] = _reviewer(
            decisions,
            kinds[reviewer],
            lessons.get(reviewer, []),
            shown.get(reviewer, 0),
            buckets,
            session_gap_s,
        )
    return out


def _reviewer(
    decisions: list[_Decision],
    kind: str | None,
    lesson_times: list[float],
    shown: int,
    buckets: int,
    session_gap_s: float,
) -> ReviewerLearning:
    session_of: list[int] = []
    session, last = 0, None
    for d in decisions:
        if last is None or d.at - last > session_gap_s:
            session += 1
        session_of.append(session)
        last = d.at
    signal = [(i + 1, s, d) for i, (d, s) in enumerate(zip(decisions, session_of, strict=True))]
    catch = [(i, s, d) for i, s, d in signal if d.signal]
    approvals = [(i, s, d) for i, s, d in signal if d.verdict == "approve"]

    def trials(rows: Iterable[tuple[int, int, _Decision]], hit: str) -> list[Trial]:
        return [
            Trial(i, d.at, 1.0 if (d.verdict in _STOPPING if hit == "catch" else d.rubber) else 0.0)
            for i, _, d in rows
        ]

    def by_session(rows: list[tuple[int, int, _Decision]], hit: str) -> list[RatePoint]:
        grouped: dict[int, list[tuple[int, int, _Decision]]] = defaultdict(list)
        for row in rows:
            grouped[row[1]].append(row)
        return [rate_point(s, trials(grouped[s], hit)) for s in sorted(grouped)]

    catch_trials = trials(catch, "catch")
    stamp_trials = trials(approvals, "rubber")
    lessons_before = [bisect.bisect_right(lesson_times, d.looked_at) for _, _, d in catch]
    return ReviewerLearning(
        reviewer_kind=kind,
        decisions=len(decisions),
        signal=len(catch),
        caught=sum(1 for t in catch_trials if t.value),
        approvals=len(approvals),
        rubber_stamps=sum(1 for t in stamp_trials if t.value),
        sessions=session,
        feedback_shown=shown,
        lessons=len(lesson_times),
        catch_by_gate=rate_trend(catch_trials, buckets),
        catch_by_session=by_session(catch, "catch"),
        rubber_stamp_by_gate=rate_trend(stamp_trials, buckets),
        rubber_stamp_by_session=by_session(approvals, "rubber"),
        catch_per_lesson=slope([float(x) for x in lessons_before], [t.value for t in catch_trials]),
        catch_per_gate=slope(
            [float(t.position) for t in catch_trials], [t.value for t in catch_trials]
        ),
        rubber_stamp_per_gate=slope(
            [float(t.position) for t in stamp_trials], [t.value for t in stamp_trials]
        ),
    )


# -- agents ------------------------------------------------------------------------------------


@dataclass
class _Episode:
    agent: str
    memory: str
    at: float
    truth: str | None = None
    outcomes: list[str | None] = field(default_factory=list)
    notes: list[int] = field(default_factory=list)

    @property
    def final(self) -> str | None:
        return self.outcomes[-1] if self.outcomes else None

    @property
    def first_final(self) -> str | None:
        return self.outcomes[0] if self.outcomes else None


def _episodes(ledger: Ledger, run_id: str | None) -> list[_Episode]:
    scope, params = _scope(run_id, "o")
    memory: dict[str, str] = {}
    run_scope = "WHERE run_id = ?" if run_id else ""
    for rid, data in ledger.query(_RUNS_SQL.format(scope=run_scope), params):
        cfg = _json(data).get("memory")
        memory[str(rid)] = "on" if isinstance(cfg, dict) and cfg.get("enabled", True) else "off"
    by_gate: dict[tuple[str, str], list[tuple[float, dict[str, Any], str | None]]] = defaultdict(
        list
    )
    for _seq, rid, at, canary, data, outcome, truth in ledger.query(
        _ATTEMPTS_SQL.format(scope=scope), params
    ):
        if canary:
            continue  # a planted variant, not the agent's work
        opened = _json(data)
        opened["__truth__"] = truth
        by_gate[str(rid), str(opened.get("gate"))].append((float(at), opened, outcome))
    episodes: list[_Episode] = []
    for (rid, _gate), rounds in by_gate.items():
        current: _Episode | None = None
        previous: str | None = None
        for at, opened, outcome in rounds:
            proposal = (opened.get("request") or {}).get("proposal") or {}
            if current is not None and previous == "escalate":
                current.outcomes[-1] = outcome  # the same attempt, passed up the chain
            else:
                if current is None or previous != "request_changes":
                    agent = f"{opened.get('graph')}/{opened.get('agent')}"
                    current = _Episode(agent, memory.get(rid, "off"), at, opened["__truth__"])
                    episodes.append(current)
                current.outcomes.append(outcome)
                current.notes.append(len(proposal.get("recalled") or ()))
            previous = outcome
    episodes.sort(key=lambda e: e.at)
    return episodes


def _agent(episodes: list[_Episode], buckets: int) -> AgentLearning:
    attempts = sum(len(e.outcomes) for e in episodes)
    resolved = [e for e in episodes if e.first_final is not None]
    first_ok = [e for e in resolved if e.first_final in ("approve", "edit")]
    approved = [e for e in episodes if e.final in ("approve", "edit")]
    notes = [n for e in episodes for n in e.notes]
    first_trials = [
        Trial(i + 1, e.at, 1.0 if e.first_final in ("approve", "edit") else 0.0)
        for i, e in enumerate(resolved)
    ]
    round_trials = [Trial(i + 1, e.at, float(len(e.outcomes))) for i, e in enumerate(approved)]
    labelled = [e for e in episodes if e.truth is not None]
    sound_trials = [
        Trial(i + 1, e.at, 1.0 if e.truth == "sound" else 0.0) for i, e in enumerate(labelled)
    ]
    return AgentLearning(
        attempts=attempts,
        first_passes=len(episodes),
        first_pass_resolved=len(resolved),
        first_pass_approved=len(first_ok),
        first_pass_approval_rate=rate(len(first_ok), len(resolved)),
        approved_episodes=len(approved),
        rounds_to_approval_mean=rate(sum(len(e.outcomes) for e in approved), len(approved)),
        notes_given_mean=rate(sum(notes), len(notes)),
        first_pass_trend=rate_trend(first_trials, buckets),
        rounds_trend=mean_trend(round_trials, buckets),
        first_pass_per_episode=slope(
            [float(t.position) for t in first_trials], [t.value for t in first_trials]
        ),
        first_pass_labelled=len(labelled),
        first_pass_sound=int(sum(t.value for t in sound_trials)),
        first_pass_sound_rate=rate(sum(t.value for t in sound_trials), len(labelled)),
        first_pass_sound_trend=rate_trend(sound_trials, buckets),
        first_pass_sound_per_episode=slope(
            [float(t.position) for t in sound_trials], [t.value for t in sound_trials]
        ),
    )


def agent_learning(
    ledger: Ledger, *, run_id: str | None = None, buckets: int = 10
) -> AgentMeasures:
    """Per agent and per memory condition: first-pass approval and rounds to approval, and
    their trends over the agent's episodes (see `AgentLearning`)."""
    episodes = _episodes(ledger, run_id)
    by_agent: dict[str, list[_Episode]] = defaultdict(list)
    by_memory: dict[str, list[_Episode]] = defaultdict(list)
    for e in episodes:
        by_agent[e.agent].append(e)
        by_memory[e.memory].append(e)
    return AgentMeasures(
        by_agent={k: _agent(v, buckets) for k, v in sorted(by_agent.items())},
        by_memory={k: _agent(v, buckets) for k, v in sorted(by_memory.items())},
    )
