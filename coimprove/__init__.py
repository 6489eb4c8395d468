"""coimprove: AI research workflows with mandatory, measured human checkpoints.

The public API is re-exported here; implementation modules are private to the package layout.
"""

from langgraph.graph import END, START

from coimprove._yaml import load_yaml_data, load_yaml_model
from coimprove.agents import ModelReviewer, resolve_model
from coimprove.canaries import Canaries, default_canaries
from coimprove.effects import Approved
from coimprove.errors import (
    ApprovalRequiredError,
    CoimproveError,
    DecisionError,
    DigestMismatchError,
    DuplicateReviewerError,
    EffectInterruptedError,
    GateClosedError,
    GraphDefinitionError,
    InvalidDecisionError,
    LedgerError,
    LedgerIntegrityError,
    NotALedgerError,
    PolicyError,
    ReviewerNotAllowedError,
    RunError,
    SelfApprovalError,
    UngatedEffectError,
    UnknownGateError,
)
from coimprove.headless import HeadlessResult, HeadlessSession, run_headless
from coimprove.ledger import SqliteLedger, open_ledger
from coimprove.memory import MemoryConfig
from coimprove.model import (
    Artifact,
    Decision,
    GateOutcome,
    GateRequest,
    LedgerEvent,
    Proposal,
    Requirement,
    Review,
    ViewEvent,
)
from coimprove.policy import Policy, load_policy
from coimprove.protocols import Clock, Ledger, ReviewContext, Reviewer, WallClock
from coimprove.reviewers.clock import SimClock
from coimprove.runner import RunInfo, Runner, load_workflow
from coimprove.state import GatedState, recording_model_calls
from coimprove.workflow import (
    AgentContext,
    Feedback,
    Workflow,
    add_agent,
    add_effect,
    add_gate,
    check_gated,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "END",
    "START",
    "AgentContext",
    "ApprovalRequiredError",
    "Approved",
    "Artifact",
    "Canaries",
    "Clock",
    "CoimproveError",
    "Decision",
    "DecisionError",
    "DigestMismatchError",
    "DuplicateReviewerError",
    "EffectInterruptedError",
    "Feedback",
    "GateClosedError",
    "GateOutcome",
    "GateRequest",
    "GatedState",
    "GraphDefinitionError",
    "HeadlessResult",
    "HeadlessSession",
    "InvalidDecisionError",
    "Ledger",
    "LedgerError",
    "LedgerEvent",
    "LedgerIntegrityError",
    "MemoryConfig",
    "ModelReviewer",
    "NotALedgerError",
    "Policy",
    "PolicyError",
    "Proposal",
    "Requirement",
    "Review",
    "ReviewContext",
    "Reviewer",
    "ReviewerNotAllowedError",
    "RunError",
    "RunInfo",
    "Runner",
    "SelfApprovalError",
    "SimClock",
    "SqliteLedger",
    "UngatedEffectError",
    "UnknownGateError",
    "ViewEvent",
    "WallClock",
    "Workflow",
    "__version__",
    "add_agent",
    "add_effect",
    "add_gate",
    "check_gated",
    "default_canaries",
    "load_policy",
    "load_workflow",
    "load_yaml_data",
    "load_yaml_model",
    "open_ledger",
    "recording_model_calls",
    "resolve_model",
    "run_headless",
]
