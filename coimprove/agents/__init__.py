"""Agents and models: typed proposals from any chat model, with an embedded local default.

```python
from coimprove import START, Workflow
from coimprove.agents import ExperimentAgent, ModelReviewer

wf = Workflow("tune")
ExperimentAgent("local").add_to(wf, "design")        # SmolLM2 in-process, no network
wf.gate("review", proposal_from="design", on_approve="run")
```

- `resolve_model(spec)`: ``local`` (default) | ``local:PATH.gguf`` | ``fake`` | ``fake:SCRIPT`` |
  ``provider:model`` (langchain ``init_chat_model``) | a `BaseChatModel` instance.
- Roles (`coimprove.agents.roles`): `IdeaAgent`, `BenchmarkItemAgent`, `CodeAgent`,
  `ExperimentAgent`, `ExecutionAnalysisAgent`, `ErrorAnalysisAgent`, `WriteupAgent`, and
  `SafetyCritic` (an advisory note on another agent's proposal).
- `generate_structured`: validated structured output with bounded tenacity retries.
- `ModelReviewer`: the model-as-reviewer baseline (reviewer kind ``model``).
- `ModelCallRecorder`: a callback handler reporting every model call (model, tokens, latency).
"""

from coimprove.agents.errors import (
    AgentOutputError,
    MissingExtraError,
    ModelError,
    ModelSpecError,
)
from coimprove.agents.fake import FakeChatModel, FakeToolCallingModel
from coimprove.agents.local import LocalChatModel, smollm2_path
from coimprove.agents.models import ModelSpec, model_label, resolve_model
from coimprove.agents.prompts import load_prompt
from coimprove.agents.reviewer import ModelReviewer, ReviewOutput
from coimprove.agents.roles import (
    AgentRole,
    BenchmarkItemAgent,
    CodeAgent,
    ErrorAnalysisAgent,
    ExecutionAnalysisAgent,
    ExperimentAgent,
    IdeaAgent,
    RoleOutput,
    SafetyCritic,
    SafetyReview,
    WriteupAgent,
    critique,
)
from coimprove.agents.structured import (
    RetryPolicy,
    Structured,
    generate_structured,
    is_transient,
    parse_output,
)
from coimprove.agents.telemetry import ModelCallRecorder, ModelCallSink, log_sink

__all__ = [
    "AgentOutputError",
    "AgentRole",
    "BenchmarkItemAgent",
    "CodeAgent",
    "ErrorAnalysisAgent",
    "ExecutionAnalysisAgent",
    "ExperimentAgent",
    "FakeChatModel",
    "FakeToolCallingModel",
    "IdeaAgent",
    "LocalChatModel",
    "MissingExtraError",
    "ModelCallRecorder",
    "ModelCallSink",
    "ModelError",
    "ModelReviewer",
    "ModelSpec",
    "ModelSpecError",
    "RetryPolicy",
    "ReviewOutput",
    "RoleOutput",
    "SafetyCritic",
    "SafetyReview",
    "Structured",
    "WriteupAgent",
    "critique",
    "generate_structured",
    "is_transient",
    "load_prompt",
    "log_sink",
    "model_label",
    "parse_output",
    "resolve_model",
    "smollm2_path",
]
