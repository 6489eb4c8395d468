"""Agent roles of the co-improvement research loop, each a node factory with a prompt file and
a pydantic output schema (see `AgentRole`)."""

from coimprove.agents.roles.analysis import (
    ErrorAnalysisAgent,
    ErrorAnalysisOutput,
    ErrorAnalysisPayload,
    ExecutionAnalysisAgent,
    ExecutionAnalysisOutput,
    ExecutionAnalysisPayload,
    FailureMode,
)
from coimprove.agents.roles.base import AgentRole, ContextSpec, RoleOutput, render_context
from coimprove.agents.roles.code import (
    CodeAgent,
    CodeOutput,
    CodePayload,
    CommitFn,
    ExperimentAgent,
    ExperimentOutput,
    ExperimentPayload,
    FileChange,
    Parameter,
)
from coimprove.agents.roles.research import (
    BenchmarkItemAgent,
    BenchmarkItemOutput,
    BenchmarkItemPayload,
    IdeaAgent,
    IdeaOutput,
    IdeaPayload,
    WriteupAgent,
    WriteupOutput,
    WriteupPayload,
)
from coimprove.agents.roles.safety import SafetyCritic, SafetyReview, critique, with_critique

__all__ = [
    "AgentRole",
    "BenchmarkItemAgent",
    "BenchmarkItemOutput",
    "BenchmarkItemPayload",
    "CodeAgent",
    "CodeOutput",
    "CodePayload",
    "CommitFn",
    "ContextSpec",
    "ErrorAnalysisAgent",
    "ErrorAnalysisOutput",
    "ErrorAnalysisPayload",
    "ExecutionAnalysisAgent",
    "ExecutionAnalysisOutput",
    "ExecutionAnalysisPayload",
    "ExperimentAgent",
    "ExperimentOutput",
    "ExperimentPayload",
    "FailureMode",
    "FileChange",
    "IdeaAgent",
    "IdeaOutput",
    "IdeaPayload",
    "Parameter",
    "RoleOutput",
    "SafetyCritic",
    "SafetyReview",
    "WriteupAgent",
    "WriteupOutput",
    "WriteupPayload",
    "critique",
    "render_context",
    "with_critique",
]
