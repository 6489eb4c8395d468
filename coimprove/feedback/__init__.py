"""Reviewer feedback: canary reveals, what became of approvals, how peers decided.

Built from the ledger (`FeedbackBuilder`, `feedback_for`), recorded when shown
(`record_feedback` → ``feedback.shown``), delivered to headless reviewers that learn
(`coimprove.reviewers.ScriptedReviewer.observe`) and measured by
`coimprove.metrics.reviewer_learning`.
"""

from coimprove.feedback.build import FeedbackBuilder, feedback_for, record_feedback
from coimprove.model import FeedbackItem, FeedbackKind

__all__ = ["FeedbackBuilder", "FeedbackItem", "FeedbackKind", "feedback_for", "record_feedback"]
