"""coimprove: AI research workflows with mandatory, measured human checkpoints.

The public API is re-exported here; implementation modules are private to the package layout.
"""

from typing import TYPE_CHECKING, Any

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
    LedgerConnectionError,
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

if TYPE_CHECKING:
    from coimprove.tool_gates import GateMiddleware

__version__ = "0.1.0.dev0"

_LAZY = {"GateMiddleware": "coimprove.tool_gates"}
"""Public names whose module needs an optional extra: imported on first use."""


def __getattr__(name: str) -> Any:
    """`GateMiddleware` needs LangChain v1 (``coimprove[agents]``): imported when first used,
    so ``import coimprove`` does not need it (and the error says what to install)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'coimprove' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
    "GateMiddleware",
    "GateOutcome",
    "GateRequest",
    "GatedState",
    "GraphDefinitionError",
    "HeadlessResult",
    "HeadlessSession",
    "InvalidDecisionError",
    "Ledger",
    "LedgerConnectionError",
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
