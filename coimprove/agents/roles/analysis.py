"""Roles that read results: execution analysis and error analysis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coimprove.agents.roles.base import AgentRole, RoleOutput


class ExecutionAnalysisPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["as_expected", "unexpected", "failed", "inconclusive"] = Field(
        description="how the run went compared with what was expected"
    )
    summary: str = Field(min_length=3, max_length=1000, description="what happened, with numbers")
    findings: list[str] = Field(default_factory=list, max_length=10, description="key findings")
    next_step: str = Field(default="", max_length=600, description="what to do next")


class ExecutionAnalysisOutput(RoleOutput, ExecutionAnalysisPayload):
    model_config = ConfigDict(extra="ignore")


class ExecutionAnalysisAgent(AgentRole[ExecutionAnalysisOutput]):
    """Collaborative execution: reads an experiment's result (kind ``analysis``)."""

    kind = "analysis"
    prompt_name = "execution_analysis"
    output_model = ExecutionAnalysisOutput
    payload_model = ExecutionAnalysisPayload
    category = "execution"

    def fallback_title(self, output: ExecutionAnalysisOutput, state: Mapping[str, Any]) -> str:
        return f"Run outcome: {output.outcome.replace('_', ' ')}"

    def body(self, output: ExecutionAnalysisOutput) -> str:
        lines = [f"**Outcome: {output.outcome}.** {output.summary}"]
        lines += [f"- {f}" for f in output.findings]
        if output.next_step:
            lines.append(f"\n**Next step.** {output.next_step}")
        return "\n".join(lines)


class FailureMode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120, description="a short name for the pattern")
    evidence: str = Field(default="", max_length=600, description="where it shows in the results")
    likely_cause: str = Field(default="", max_length=400)
    fix: str = Field(default="", max_length=400, description="a change that would address it")


class ErrorAnalysisPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=3, max_length=1000, description="what went wrong overall")
    failure_modes: list[FailureMode] = Field(min_length=1, max_length=8)


class ErrorAnalysisOutput(RoleOutput, ErrorAnalysisPayload):
    model_config = ConfigDict(extra="ignore")


class ErrorAnalysisAgent(AgentRole[ErrorAnalysisOutput]):
    """Evaluation & error analysis: failure modes in results (kind ``error_analysis``)."""

    kind = "error_analysis"
    prompt_name = "error_analysis"
    output_model = ErrorAnalysisOutput
    payload_model = ErrorAnalysisPayload
    category = "error_analysis"

    def fallback_title(self, output: ErrorAnalysisOutput, state: Mapping[str, Any]) -> str:
        names = ", ".join(m.name for m in output.failure_modes[:3])
        return f"Failure modes: {names}"[:120]

    def body(self, output: ErrorAnalysisOutput) -> str:
        lines = [output.summary, ""]
        for mode in output.failure_modes:
            lines.append(f"- **{mode.name}**: {mode.evidence}".rstrip(": "))
            if mode.likely_cause:
                lines.append(f"  likely cause: {mode.likely_cause}")
            if mode.fix:
                lines.append(f"  fix: {mode.fix}")
        return "\n".join(lines)
