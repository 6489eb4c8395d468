"""A scripted reviewer: a `ReviewerProfile` answering gates on a simulated clock.

Deterministic and seeded. The random stream for a gate depends only on the seed, the reviewer id
and the gate id (plus the escalation level above the first line), so the same reviewer gives the
same review of the same gate whatever order gates arrive in. Every gate consumes the same fixed
sequence of uniforms, one per choice, so two profiles (or two contexts) with the same seed share
their random numbers: raising `skim_rate` or the queue only turns more reviews into skims, it
never reshuffles the rest (common random numbers, which keep ablations paired). Under
``catch_mode: content`` the chance of saying no also depends on the cues the gate shows
(`ContentReading`).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from coimprove.errors import InvalidDecisionError
from coimprove.model import (
    Decision,
    FeedbackItem,
    GateRequest,
    Review,
    ReviewerKind,
    Verdict,
    ViewEvent,
)
from coimprove.protocols import ReviewContext
from coimprove.reviewers.profiles import ReviewerProfile, load_profile

__all__ = ["ScriptedReviewer"]

_NEGATIVE: tuple[Verdict, ...] = ("reject", "request_changes")

_FALLBACK: dict[Verdict, tuple[Verdict, ...]] = {
    "approve": ("approve", "edit"),
    "edit": ("edit", "approve"),
    "reject": ("reject", "request_changes"),
    "request_changes": ("request_changes", "reject"),
    "escalate": ("escalate",),
}
"""Verdicts to try, in order, when the chosen one is not allowed (same polarity first)."""

_CHANGE_NOTES = (
    "the evaluation does not support the claim; add a baseline and report variance",
    "the change is broader than the stated goal; split it and justify each part",
    "edge cases are untested; add tests for the failure modes you describe",
    "the method is unclear; explain the key step so it can be checked",
)

# Margins keeping simulated dwell strictly on one side of `min_review_seconds`, so the
# rubber-stamp measure (dwell below the minimum) classifies skims and reviews exactly.
_SKIM_MAX_SHARE = 0.99
_REVIEW_MARGIN_S = 1e-3


class ScriptedReviewer:
    """Answers gates the way its profile says, deterministically for a given seed.

    ``ScriptedReviewer(load_profile("careful"), id="sim-1", seed=7)``; `review` is the
    `Reviewer` protocol's coroutine, `simulate` the same computation called synchronously.
    """

    def __init__(
        self,
        profile: ReviewerProfile | str | Path,
        *,
        id: str,
        seed: int,
        kind: ReviewerKind = "scripted",
        role: str | None = None,
    ) -> None:
        if not id:
            raise ValueError("a scripted reviewer needs a non-empty id")
        self.profile = profile if isinstance(profile, ReviewerProfile) else load_profile(profile)
        self._id = id
        self._kind: ReviewerKind = kind
        self.seed = seed
        self.role = role
        self.lessons = 0
        """Lessons learnt so far (misses revealed by feedback the profile learns from)."""
        self.feedback_seen = 0

    def observe(self, item: FeedbackItem) -> None:
        """Take in feedback on an earlier decision; a lesson of a kind the profile's `learning`
        block learns from raises its catch rate for every later review."""
        self.feedback_seen += 1
        learning = self.profile.learning
        if learning is not None and item.lesson and item.kind in learning.from_:
            self.lessons += 1

    @classmethod
    def from_profile_name(
        cls,
        name: str | Path,
        *,
        id: str,
        seed: int,
        kind: ReviewerKind = "scripted",
        role: str | None = None,
    ) -> ScriptedReviewer:
        """A reviewer with a built-in profile (``careful``, …) or one loaded from a YAML path."""
        return cls(load_profile(name), id=id, seed=seed, kind=kind, role=role)

    @property
    def id(self) -> str:
        return self._id

    @property
    def kind(self) -> ReviewerKind:
        return self._kind

    def __repr__(self) -> str:
        return f"ScriptedReviewer({self.profile.name!r}, id={self._id!r}, seed={self.seed})"

    def rng_for(self, request: GateRequest) -> random.Random:
        """The random stream for one gate: ``f"{seed}:{id}:{gate_id}"`` (+ ``:L<level>``)."""
        key = f"{self.seed}:{self._id}:{request.gate_id}"
        if request.requirement.level:
            key += f":L{request.requirement.level}"
        return random.Random(key)

    async def review(self, request: GateRequest, context: ReviewContext) -> Review:
        """Look at the gate (timed views on the simulated clock) and decide."""
        return self.simulate(request, context)

    def simulate(self, request: GateRequest, context: ReviewContext) -> Review:
        """The review this reviewer gives `request` in `context` (pure; no clock is moved)."""
        p, req = self.profile, request.requirement
        rng = self.rng_for(request)
        # A fixed number of draws in a fixed order, each used for exactly one choice.
        (
            u_pickup,
            u_skim,
            u_dwell,
            u_redraw,
            u_detail,
            u_detail_at,
            u_escalate,
            u_negative,
            u_changes,
            u_edit,
            u_note,
        ) = (rng.random() for _ in range(11))

        bad = context.canary or context.truth in ("flawed", "dead_end")
        skim = u_skim < p.effective_skim_rate(
            context.queue_length, context.session_elapsed_s, self.lessons
        )

        # -- timing ---------------------------------------------------------------------------
        start = context.clock.now() + p.pickup.sample(u_pickup)
        min_review = max(req.min_review_seconds, 0.0)
        if skim:
            dwell = p.skim_time.sample(u_dwell)
            if min_review > 0 and dwell >= min_review * _SKIM_MAX_SHARE:
                dwell = min_review * (0.5 + (_SKIM_MAX_SHARE - 0.5) * u_redraw)
            opens_detail = False
        else:
            dwell = p.review_time.sample(u_dwell)
            if dwell < min_review + _REVIEW_MARGIN_S:
                dwell = min_review * (1.0 + 0.5 * u_redraw) + _REVIEW_MARGIN_S
            opens_detail = request.proposal.has_detail and u_detail < p.p_open_detail
        views = [ViewEvent(what="gate", at=start)]
        if opens_detail:
            views.append(ViewEvent(what="detail", at=start + dwell * (0.05 + 0.25 * u_detail_at)))
        decided_at = start + dwell

        # -- verdict --------------------------------------------------------------------------
        can_escalate = "escalate" in req.allowed and req.level < len(req.escalation)
        verdict: Verdict
        if can_escalate and u_escalate < p.escalate_rate:
            verdict = "escalate"
        else:
            p_negative = self._p_negative(request, context, bad=bad, skim=skim)
            if u_negative < p_negative:
                verdict = "request_changes" if u_changes < p.changes_share else "reject"
            elif not skim and u_edit < p.edit_rate and self._can_edit(request):
                verdict = "edit"
            else:
                verdict = "approve"
        verdict = self._allowed(verdict, request)

        note, edited = "", None
        if verdict == "request_changes":
            note = f"{self._id}: {_CHANGE_NOTES[int(u_note * len(_CHANGE_NOTES))]}"
        elif verdict == "reject":
            note = f"{self._id}: rejected"
        elif verdict == "escalate":
            note = f"{self._id}: escalating to {req.escalation[req.level]}"
        elif verdict == "edit":
            edited = self._edited_payload(request.proposal.payload)
            note = f"{self._id}: edited the payload"
        decision = Decision(
            verdict=verdict,
            reviewer=self._id,
            reviewer_kind=self._kind,
            digest=request.digest,
            note=note,
            edited_payload=edited,
            role=self.role,
        )
        return Review(views=tuple(views), decision=decision, decided_at=decided_at)

    # -- helpers ------------------------------------------------------------------------------

    def _p_negative(
        self, request: GateRequest, context: ReviewContext, *, bad: bool, skim: bool
    ) -> float:
        """P(reject or request_changes): from the hidden label (``catch_mode: label``), or from
        the label and the cues visible on the gate (``content``)."""
        p = self.profile
        caught = (
            p.skim_catch_rate
            if skim
            else p.effective_catch_rate(context.session_elapsed_s, self.lessons)
        )
        reading = p.reading
        if reading is None:
            chance = caught if bad else p.false_alarm_rate
        else:
            visible = bool(reading.cues(request, skim=skim))
            if bad:
                unseen = 0.0 if skim else reading.hidden_catch_rate
                chance = (caught if visible else unseen) * reading.size_factor(request)
            else:
                chance = reading.cue_false_alarm_rate if visible else p.false_alarm_rate
        return chance * (1.0 - p.approval_bias)

    @staticmethod
    def _allowed(verdict: Verdict, request: GateRequest) -> Verdict:
        allowed = request.requirement.allowed
        for candidate in _FALLBACK[verdict]:
            if candidate in allowed and (
                candidate != "edit" or ScriptedReviewer._can_edit(request)
            ):
                return candidate
        for candidate in allowed:
            if candidate not in ("edit", "escalate") and (candidate in _NEGATIVE) == (
                verdict in _NEGATIVE
            ):
                return candidate
        for candidate in allowed:
            if candidate not in ("edit", "escalate"):
                return candidate
        raise InvalidDecisionError(
            f"gate {request.gate_id!r} allows no verdict a scripted reviewer can give "
            f"(allowed: {', '.join(allowed) or 'none'})"
        )

    @staticmethod
    def _can_edit(request: GateRequest) -> bool:
        """Edit only when allowed and the tweak (a ``reviewed_by`` key) fits the payload schema."""
        if "edit" not in request.requirement.allowed:
            return False
        schema = request.payload_schema
        if schema and schema.get("additionalProperties") is False:
            return "reviewed_by" in (schema.get("properties") or {})
        return True

    def _edited_payload(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A copy of `payload` with this reviewer appended to ``reviewed_by`` (always a change)."""
        edited = dict(payload)
        previous = edited.get("reviewed_by")
        if previous is None:
            edited["reviewed_by"] = [self._id]
        elif isinstance(previous, list):
            edited["reviewed_by"] = [*previous, self._id]
        else:
            edited["reviewed_by"] = [previous, self._id]
        return edited
