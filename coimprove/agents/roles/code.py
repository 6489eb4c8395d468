"""Roles that propose things to run: code changes and experiments.

`CodeAgent` turns the model's file changes into a commit through a `commit` function with
`coimprove.experiments.code_proposal`'s keyword signature — pass
``functools.partial(code_proposal, workspace)`` — so the gate shows the diff and an approval
names the SHA (the agents layer does not import the sandbox layer). Without one, the files
travel as inline artifacts. `ExperimentAgent` proposes a payload that
`coimprove.sandbox.ExperimentSpec` accepts, so `experiment_effect` can run an approval as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from coimprove.agents.roles.base import AgentContextLike, AgentRole, RoleOutput
from coimprove.model import Artifact, Proposal, Risk


class CommitFn(Protocol):
    """``code_proposal(workspace, ...)`` with the workspace bound."""

    def __call__(
        self,
        *,
        title: str,
        author: str,
        files: Mapping[str, str | bytes] | None = None,
        body: str = "",
        risk: Risk = "medium",
        tags: tuple[str, ...] | list[str] = (),
        payload: dict[str, Any] | None = None,
    ) -> Proposal: ...


_SAFE_PATH = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9_.\-/]+$")


class FileChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        min_length=1, max_length=200, description="relative path in the repository, e.g. train.py"
    )
    content: str = Field(max_length=20000, description="the complete new content of the file")

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        if not _SAFE_PATH.match(v):
            raise ValueError("must be a relative path without '..' (letters, digits, _ . - /)")
        return v


class CodePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=3, max_length=1000, description="what the change does and why")
    paths: list[str] = Field(default_factory=list, description="files the change writes")
    test_command: str = Field(default="", max_length=300, description="how to check it")


class CodeOutput(RoleOutput):
    summary: str = Field(min_length=3, max_length=1000, description="what the change does and why")
    files: list[FileChange] = Field(min_length=1, max_length=20, description="files to write")
    test_command: str = Field(default="", max_length=300, description="a command that checks it")


class CodeAgent(AgentRole[CodeOutput]):
    """Method innovation: a code change against the run's workspace (kind ``code``)."""

    kind = "code"
    prompt_name = "code"
    output_model = CodeOutput
    payload_model = CodePayload
    category = "method_innovation"
    default_risk = "medium"

    def __init__(self, model: Any = None, *, commit: CommitFn | None = None, **kw: Any) -> None:
        super().__init__(model, **kw)
        self.commit = commit

    async def build(
        self, output: CodeOutput, state: Mapping[str, Any], ctx: AgentContextLike
    ) -> Proposal:
        files = {f.path: f.content for f in output.files}
        payload = CodePayload(
            summary=output.summary, paths=list(files), test_command=output.test_command
        ).model_dump(mode="json")
        body = output.summary
        if output.test_command:
            body += f"\n\nCheck: `{output.test_command}`"
        author = f"agent:{ctx.name}"
        if self.commit is not None:
            return self.commit(
                title=output.title,
                author=author,
                files=files,
                body=body,
                risk=self.risk,
                payload=payload,
            )
        return Proposal(
            kind=self.kind,
            title=output.title,
            body=body,
            payload=payload,
            artifacts=tuple(Artifact.from_text(p, c) for p, c in files.items()),
            author=author,
            risk=self.risk,
        )


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")


class Parameter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=_ENV_NAME.pattern, max_length=40, description="an identifier, e.g. learning_rate"
    )
    value: str = Field(max_length=80, description="its value, as text")


class ExperimentPayload(BaseModel):
    """The subset of `coimprove.sandbox.ExperimentSpec` an agent proposes (and it accepts)."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, max_length=500, description="run with `sh -c`")
    env: dict[str, str] = Field(default_factory=dict, description="parameters, upper-cased")
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    expected_outcome: str = Field(default="", max_length=800)


class ExperimentOutput(RoleOutput):
    hypothesis: str = Field(min_length=3, max_length=400, description="what the run tests")
    command: str = Field(
        min_length=1, max_length=300, description="shell command that runs the experiment"
    )
    parameters: list[Parameter] = Field(
        default_factory=list,
        max_length=8,
        description="settings, passed to the command as upper-cased environment variables",
    )
    expected_outcome: str = Field(
        min_length=3, max_length=400, description="the result you expect, with numbers"
    )
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="seconds before it is killed")


class ExperimentAgent(AgentRole[ExperimentOutput]):
    """Joint experiment design: a runnable spec (kind ``experiment``)."""

    kind = "experiment"
    prompt_name = "experiment"
    output_model = ExperimentOutput
    payload_model = ExperimentPayload
    category = "experiment_design"
    default_risk = "medium"

    def payload(self, output: ExperimentOutput) -> dict[str, Any]:
        return ExperimentPayload(
            command=output.command,
            env={p.name.upper(): p.value for p in output.parameters},
            timeout_s=output.timeout_s,
            expected_outcome=output.expected_outcome,
        ).model_dump(mode="json")

    def body(self, output: ExperimentOutput) -> str:
        params = ", ".join(f"{p.name}={p.value}" for p in output.parameters) or "none"
        return (
            f"**Hypothesis.** {output.hypothesis}\n\n**Command.** `{output.command}`\n\n"
            f"**Parameters.** {params}\n\n**Expected.** {output.expected_outcome}\n\n"
            f"Timeout: {json.dumps(output.timeout_s)} s"
        )
