"""Roles at the two ends of a research cycle: problem identification, benchmark items, write-up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coimprove.agents.roles.base import AgentRole, RoleOutput, degenerate_reason


def _clip(text: str, limit: int) -> str:
    """`text` on one line, cut at a word boundary to at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"


class IdeaPayload(BaseModel):
    """An idea as a gate shows (and a reviewer may edit) it."""

    model_config = ConfigDict(extra="forbid")

    problem: str = Field(min_length=3, max_length=800, description="the problem, concretely")
    idea: str = Field(min_length=3, max_length=800, description="the proposed direction")
    why_it_matters: str = Field(default="", max_length=600, description="expected payoff")
    first_step: str = Field(default="", max_length=400, description="the smallest useful test")


class IdeaOutput(RoleOutput, IdeaPayload):
    model_config = ConfigDict(extra="ignore")


class IdeaAgent(AgentRole[IdeaOutput]):
    """Collaborative problem identification: one research idea (kind ``idea``)."""

    kind = "idea"
    prompt_name = "idea"
    output_model = IdeaOutput
    payload_model = IdeaPayload
    category = "problem_identification"

    def fallback_title(self, output: IdeaOutput, state: Mapping[str, Any]) -> str:
        """The idea's own text, else the problem's, whichever first names something concrete."""
        for text in (output.idea, output.problem):
            if degenerate_reason(text, prompt="", earlier={}) is None:
                return "Idea: " + _clip(text, 100)
        return "Idea (the model's text names nothing concrete)"

    def body(self, output: IdeaOutput) -> str:
        parts = [f"**Problem.** {output.problem}", f"**Idea.** {output.idea}"]
        if output.why_it_matters:
            parts.append(f"**Why it matters.** {output.why_it_matters}")
        if output.first_step:
            parts.append(f"**First step.** {output.first_step}")
        return "\n\n".join(parts)


class BenchmarkItemPayload(BaseModel):
    """One benchmark item: what is asked, the reference answer and how to grade it."""

    model_config = ConfigDict(extra="forbid")

    subtask: str = Field(default="", max_length=120, description="which subtask it probes")
    prompt: str = Field(min_length=3, max_length=1500, description="the question put to a model")
    reference_answer: str = Field(min_length=1, max_length=1500, description="a correct answer")
    rubric: str = Field(default="", max_length=1000, description="how to grade an answer")
    difficulty: Literal["easy", "medium", "hard"] = Field(default="medium")


class BenchmarkItemOutput(RoleOutput, BenchmarkItemPayload):
    model_config = ConfigDict(extra="ignore")


class BenchmarkItemAgent(AgentRole[BenchmarkItemOutput]):
    """Benchmark co-creation: one labelled item (kind ``benchmark_item``)."""

    kind = "benchmark_item"
    prompt_name = "benchmark_item"
    output_model = BenchmarkItemOutput
    payload_model = BenchmarkItemPayload
    category = "benchmark_creation"

    def body(self, output: BenchmarkItemOutput) -> str:
        return (
            f"**Item ({output.difficulty}{', ' + output.subtask if output.subtask else ''}).** "
            f"{output.prompt}\n\n**Reference answer.** {output.reference_answer}"
            + (f"\n\n**Rubric.** {output.rubric}" if output.rubric else "")
        )


class WriteupPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    abstract: str = Field(min_length=3, max_length=1200, description="a few sentences")
    limitations: str = Field(default="", max_length=800, description="what the work does not show")


class WriteupOutput(RoleOutput, WriteupPayload):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(
        min_length=3, max_length=6000, description="the write-up in markdown, with results"
    )


class WriteupAgent(AgentRole[WriteupOutput]):
    """Scientific communication: a write-up of the run (kind ``writeup``)."""

    kind = "writeup"
    prompt_name = "writeup"
    output_model = WriteupOutput
    payload_model = WriteupPayload
    category = "scientific_communication"

    def fallback_title(self, output: WriteupOutput, state: Mapping[str, Any]) -> str:
        return "Write-up: " + _clip(output.abstract, 100)

    def body(self, output: WriteupOutput) -> str:
        body = f"**Abstract.** {output.abstract}\n\n{output.text}"
        if output.limitations:
            body += f"\n\n**Limitations.** {output.limitations}"
        return body
