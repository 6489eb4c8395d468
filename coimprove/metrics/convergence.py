"""Does the human converge on the AI? People's contribution and how their changes relate to
the agent proposals they change, over time (skill-convergence collapse, seed 001).

For each person's decision (reviewer kind ``human`` or ``scripted``, as in
`coimprove.metrics.CONTRIBUTOR_KINDS`) in time order, cut into equal slices:

- contribution: share that changed the proposal (edit or request_changes), Wilson interval;
- similarity: for each change, how alike the change and the agent's proposal are — an edited
  payload against the proposed payload, a request_changes note against the proposal's text.
  Rising similarity means the person's changes echo the agent's own output;
- diversity: 1 − mean pairwise similarity among the people's changes in the slice, beside the
  same among the agent proposals they decided. Human diversity falling below the agent's is
  the convergence signature.

Similarity is `text_similarity` (cosine over word counts) unless a function is given (e.g.
cosine over `coimprove.embeddings.Embedder` vectors). Pairwise diversity
uses at most the first `max_pairs_items` items of a slice.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from coimprove.metrics.learning import _json, _scope
from coimprove.metrics.models import ContributionPoint, HumanConvergence
from coimprove.metrics.sql import CONTRIBUTOR_KINDS
from coimprove.metrics.stats import wilson
from coimprove.metrics.trends import slices, slope
from coimprove.model import canonical_json
from coimprove.protocols import Ledger

Similarity = Callable[[str, str], float]

_PEOPLE_SQL = """
SELECT d.seq, d.at, d.verdict, d.data, o.data
FROM events d JOIN events o ON o.gate_id = d.gate_id AND o.type = 'gate.opened'
WHERE d.type = 'gate.decided' AND d.reviewer_kind IN ({kinds}) {scope}
ORDER BY d.at, d.seq
"""


_WORD = re.compile(r"\w+")


@lru_cache(maxsize=8192)
def _bag(text: str) -> tuple[dict[str, int], float]:
    """Word counts (lower-cased) and their Euclidean norm."""
    counts = Counter(_WORD.findall(text.lower()))
    return dict(counts), math.sqrt(sum(c * c for c in counts.values()))


def text_similarity(a: str, b: str) -> float:
    """Cosine similarity of the two texts' word counts (1 for identical texts, 0 for no word
    in common). Linear in the texts' length, so pairwise diversity stays cheap on big ledgers
    (difflib's ratio, tried first, made a report of 250 decisions take seconds)."""
    if a == b:
        return 1.0
    (bag_a, norm_a), (bag_b, norm_b) = _bag(a), _bag(b)
    if not norm_a or not norm_b:
        return 0.0
    if len(bag_b) < len(bag_a):
        bag_a, bag_b = bag_b, bag_a
    dot = sum(count * bag_b.get(word, 0) for word, count in bag_a.items())
    return min(1.0, dot / (norm_a * norm_b))


def _proposal_text(proposal: dict[str, Any]) -> str:
    parts = [str(proposal.get("title") or ""), str(proposal.get("body") or "")]
    if proposal.get("payload"):
        parts.append(canonical_json(proposal["payload"]))
    return "\n".join(p for p in parts if p)


def _diversity(texts: Sequence[str], similarity: Similarity, limit: int) -> float | None:
    items = list(texts)[:limit]
    pairs = list(itertools.combinations(items, 2))
    if not pairs:
        return None
    return 1.0 - sum(similarity(a, b) for a, b in pairs) / len(pairs)


def human_convergence(
    ledger: Ledger,
    *,
    run_id: str | None = None,
    buckets: int = 10,
    similarity: Similarity = text_similarity,
    max_pairs_items: int = 40,
) -> HumanConvergence:
    """People's contribution, and the similarity and diversity of their changes, over time."""
    scope, params = _scope(run_id, "d")
    kinds = ", ".join(f"'{k}'" for k in CONTRIBUTOR_KINDS)
    rows = ledger.query(_PEOPLE_SQL.format(kinds=kinds, scope=scope), params)
    changed_flags: list[float] = []
    change_text: list[str | None] = []
    change_sim: list[float | None] = []
    proposal_text: list[str] = []
    for _seq, _at, verdict, d_data, o_data in rows:
        decided, opened = _json(d_data), _json(o_data)
        proposal = (opened.get("request") or {}).get("proposal") or {}
        text = _proposal_text(proposal)
        proposal_text.append(text)
        change: str | None = None
        sim: float | None = None
        if verdict == "edit":
            edited = (decided.get("edited_proposal") or {}).get("payload") or {}
            change = canonical_json(edited)
            sim = similarity(change, canonical_json(proposal.get("payload") or {}))
        elif verdict == "request_changes":
            change = str((decided.get("decision") or {}).get("note") or "")
            sim = similarity(change, text)
        changed_flags.append(1.0 if change is not None else 0.0)
        change_text.append(change)
        change_sim.append(sim)
    trend = []
    for i, s in enumerate(slices(len(rows), buckets)):
        part = range(s.start, s.stop)
        n = len(part)
        changed = int(sum(changed_flags[j] for j in part))
        sims = [v for j in part if (v := change_sim[j]) is not None]
        ci = wilson(changed, n)
        trend.append(
            ContributionPoint(
                index=i + 1,
                n=n,
                changed=changed,
                rate=changed / n if n else None,
                low=ci[0] if ci else None,
                high=ci[1] if ci else None,
                similarity=sum(sims) / len(sims) if sims else None,
                human_diversity=_diversity(
                    [t for j in part if (t := change_text[j]) is not None],
                    similarity,
                    max_pairs_items,
                ),
                agent_diversity=_diversity(
                    [proposal_text[j] for j in part], similarity, max_pairs_items
                ),
            )
        )
    sim_points = [(float(i + 1), v) for i, v in enumerate(change_sim) if v is not None]
    return HumanConvergence(
        decisions=len(rows),
        changed=int(sum(changed_flags)),
        trend=trend,
        contribution_per_decision=slope([float(i + 1) for i in range(len(rows))], changed_flags),
        similarity_per_change=slope([x for x, _ in sim_points], [y for _, y in sim_points]),
    )
