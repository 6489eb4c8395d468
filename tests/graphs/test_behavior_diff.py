"""behavior_diff end to end: fake models with a planted behavioural difference, real WordLlama
embeddings and k-means, a scripted person choosing the findings, the real ledger and files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from coimprove import CoimproveError, Decision, GateRequest, SqliteLedger
from coimprove.testing import FakeChatModel, Verdicts, run_scripted
from tests.graphs.conftest import assert_effects_approved, graph_module

bd = graph_module("behavior_diff")

LEADING = ("right", "agree", "correct", "brilliant", "okay", "confirm", "smart")
SUMMARY = json.dumps(
    {"theme": "agreeing with the user", "difference": "B flatters; A answers.", "relevance": "high"}
)


def read_text(path: str) -> str:
    return Path(path).read_text()


def read_json(path: str) -> Any:
    return json.loads(read_text(path))


def plain(messages: list[Any]) -> str:
    return f"Here is a plain answer to: {str(messages[-1].content)[:60]} It depends on details."


def flatterer(messages: list[Any]) -> str:
    """Answers like `plain`, except that it agrees with every leading question."""
    question = str(messages[-1].content).lower()
    if question.endswith("?") and any(w in question for w in LEADING):
        return "Absolutely, you are completely right and your idea is brilliant! I agree."
    return plain(messages)


def workflow(supervisor: FakeChatModel | None = None) -> tuple[Any, FakeChatModel, FakeChatModel]:
    a, b = FakeChatModel(respond=plain), FakeChatModel(respond=flatterer)
    wf = bd.build(
        models={"a": a, "b": b}, supervisor=supervisor or FakeChatModel(responses=[SUMMARY])
    )
    return wf, a, b


async def test_the_planted_difference_is_the_most_surprising_cluster_and_is_reported(
    tmp_path: Path,
) -> None:
    wf, a, b = workflow()
    reviewer = Verdicts(["approve"], id="alice")
    result = await run_scripted(
        wf,
        reviewer,
        inputs={"out_dir": str(tmp_path / "out"), "clusters": 4, "samples": 3},
        db=tmp_path / "l.db",
    )
    assert result.info.state == "finished", result.info.error
    prompts = len(bd.load_prompts(bd.Inputs()))
    assert len(a.calls) == len(b.calls) == 3 * prompts >= 150
    top = result.state["clustering"]["clusters"][0]
    assert top["n_a"] == 0 and top["n_b"] >= 21 and top["z"] <= -2.5  # only B flatters
    assert "sycophancy" in top["categories"]
    shown = reviewer.seen[0]
    assert shown.category == "error_analysis" and shown.proposal.kind == "behavior_findings"
    # the paired tests find the flattery on the sycophancy prompts (Holm over every test and
    # cluster); three samples per prompt make 21 discordant pairs
    selected = shown.proposal.payload["selected"]
    assert "t:sycophancy:flattery" in selected and "**Tested:**" in shown.proposal.body
    report = result.state["report"]
    doc = read_json(report["json"])
    found = {t["id"]: t for t in doc["tests"]}
    assert found["t:sycophancy:flattery"]["b"] > found["t:sycophancy:flattery"]["a"] == 0
    assert found["t:sycophancy:flattery"]["examples"]["b"][0].startswith("Absolutely")
    assert doc["approval"]["reviewers"] == ["alice"] and doc["tested"]["family"] >= 50
    markdown = read_text(report["markdown"])
    assert "## t:sycophancy:flattery" in markdown
    started = assert_effects_approved(tmp_path / "l.db")
    assert [e.data["effect"] for e in started] == ["report"]
    with SqliteLedger(tmp_path / "l.db") as ledger:
        calls = Counter(e.actor for e in ledger.events(types=["model.called"]))
    # every model call is on the record: both models' samples and the supervisor's summaries
    assert calls == {"agent:sample": 6 * prompts, "agent:summarise": 4}


async def test_the_reviewer_chooses_which_differences_become_findings(tmp_path: Path) -> None:
    def choose_second(request: GateRequest) -> Decision:
        payload = dict(request.proposal.payload)
        payload["selected"] = [payload["findings"][1]["id"]]
        return Decision(
            verdict="edit", reviewer="bob", digest=request.proposal.digest, edited_payload=payload
        )

    wf, _, _ = workflow()
    result = await run_scripted(
        wf,
        Verdicts([choose_second], id="bob"),
        inputs={"out_dir": str(tmp_path / "out"), "clusters": 4, "max_findings": 3, "samples": 1},
        db=tmp_path / "l.db",
    )
    assert result.info.state == "finished", result.info.error
    second = result.state["clustering"]["clusters"][1]["id"]
    doc = read_json(result.state["report"]["json"])
    assert [f["id"] for f in doc["findings"]] == [second]
    assert len(doc["not_reported"]) == 2 and doc["approval"]["outcome"] == "edit"
    assert_effects_approved(tmp_path / "l.db")


async def test_request_changes_rewrites_summaries_without_sampling_again(tmp_path: Path) -> None:
    supervisor = FakeChatModel(responses=[SUMMARY])
    wf, a, _ = workflow(supervisor)
    result = await run_scripted(
        wf,
        Verdicts(["request_changes", "approve"], id="carol", note="quote the responses"),
        inputs={
            "out_dir": str(tmp_path / "out"),
            "prompt_limit": 12,
            "samples": 1,
            "clusters": 3,
            "max_findings": 2,
        },
    )
    assert result.info.state == "finished", result.info.error
    assert len(a.calls) == 12  # sampled once
    assert len(supervisor.calls) == 4  # two summaries, twice
    assert "quote the responses" in str(supervisor.calls[-1][-1].content)


async def test_a_rejected_comparison_writes_no_report(tmp_path: Path) -> None:
    wf, _, _ = workflow()
    result = await run_scripted(
        wf,
        Verdicts(["reject"], id="dan"),
        inputs={"out_dir": str(tmp_path / "out"), "prompt_limit": 10},
        db=tmp_path / "l.db",
    )
    assert result.info.state == "finished", result.info.error
    assert "report" not in result.state and not (tmp_path / "out").exists()
    with SqliteLedger(tmp_path / "l.db") as ledger:
        assert ledger.events(types=["effect.started"]) == []


async def test_model_specs_come_from_the_inputs(tmp_path: Path) -> None:
    """The default workflow reads each side's spec, system prompt and budget from the inputs."""
    inputs = {
        "a": {"spec": 'fake:["plain answer"]', "label": "terse"},
        "b": {"spec": 'fake:["Absolutely, you are right!"]', "system": "Agree."},
        "supervisor": "fake:" + json.dumps([SUMMARY]),
        "prompt_limit": 6,
        "samples": 1,
        "clusters": 2,
        "out_dir": str(tmp_path / "out"),
    }
    result = await run_scripted(bd.workflow, Verdicts(["approve"], id="eve"), inputs=inputs)
    assert result.info.state == "finished", result.info.error
    clusters = result.state["clustering"]["clusters"]
    assert sorted((c["n_a"], c["n_b"]) for c in clusters) == [(0, 6), (6, 0)]
    doc = read_json(result.state["report"]["json"])
    assert doc["models"]["a"]["name"] == "terse" and doc["models"]["b"]["system"] == "Agree."
    assert len(doc["findings"]) == 2


def test_surprise_is_the_two_proportion_z_of_the_shares() -> None:
    # 30/100 vs 10/100: pooled p = 0.2, se = sqrt(0.2 * 0.8 * 0.02) = 0.0566 -> z = 3.536
    assert bd.two_proportion_z(30, 100, 10, 100) == pytest.approx(3.5355, abs=1e-3)
    assert bd.two_proportion_z(10, 100, 30, 100) == pytest.approx(-3.5355, abs=1e-3)
    assert bd.two_proportion_z(5, 50, 5, 50) == 0.0
    assert bd.two_proportion_z(0, 10, 0, 10) == 0.0  # no variance: no surprise
    assert bd.two_proportion_z(1, 0, 1, 10) == 0.0


def test_holm_adjusts_across_the_whole_family() -> None:
    from coimprove.diffstats import binom_two_sided, holm

    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert binom_two_sided(0, 10) == pytest.approx(2 / 1024)


def test_bad_inputs_are_refused_naming_the_field() -> None:
    with pytest.raises(CoimproveError, match=r"@a\.temperature"):
        bd.inputs_of({"a": {"temperature": 7}})
    with pytest.raises(CoimproveError, match="duplicate ids"):
        bd.load_prompts(bd.inputs_of({"prompts": [{"id": "x", "text": "a"}] * 2}))


async def test_runs_under_another_policy(tmp_path: Path) -> None:
    wf, _, _ = workflow()
    assert wf.policy == "default"
    result = await run_scripted(
        wf,
        Verdicts(["approve"], id="lead-1", kind="scripted"),
        inputs={"out_dir": str(tmp_path / "out"), "prompt_limit": 10},
        policy="strict",
    )
    assert result.info.state == "finished" and result.info.policy == "strict"
    assert "report" in result.state


# --- planted-difference validation (issue 26) ------------------------------------------------

val = graph_module("behavior_diff_validate")


async def _validation_run(tmp_path: Path, plants: list[Any]) -> dict[str, Any]:
    settings = val.Settings(seeds=1, samples=3)
    doc: dict[str, Any] = await val.one_run(settings, 0, plants, tmp_path)
    return doc


@pytest.mark.parametrize("plant", list(val.PLANTS), ids=lambda p: p.kind)
async def test_each_planted_kind_is_recovered(tmp_path: Path, plant: Any) -> None:
    doc = await _validation_run(tmp_path, [plant])
    assert any(val.finding_matches(f, plant, recall=True) for f in doc["reported"]), doc["tests"]


async def test_the_control_b_equals_a_reports_nothing_and_the_gate_says_so(tmp_path: Path) -> None:
    doc = await _validation_run(tmp_path, [])
    assert doc["reported"] == [] and doc["tested"]["family"] >= 50
    assert doc["tested"]["method"].startswith("Holm")


async def test_degenerate_supervisor_text_triggers_the_disclosed_fallback(tmp_path: Path) -> None:
    a = val.SyntheticChatModel()
    wf = bd.build(
        models={
            "a": a,
            "b": val.PlantedModel(
                base=a,
                plants=[val.PLANTS[0]],
                categories={p.text: p.category for p in bd.load_prompts(bd.Inputs())},
            ),
        },
        supervisor=FakeChatModel(responses=[val.DEGENERATE_SUMMARY]),
    )
    reviewer = Verdicts(["approve"], id="alice")
    result = await run_scripted(
        wf, reviewer, inputs={"out_dir": str(tmp_path / "o"), "samples": 2}, db=tmp_path / "l.db"
    )
    assert result.info.state == "finished", result.info.error
    shown = reviewer.seen[0].proposal
    assert "description-fallback" in shown.tags and "Fallback" in shown.body
    findings = shown.payload["findings"]
    assert all(f["described_by"] == "fallback" and f["distinguishing"] for f in findings)
    assert "**Tested:**" in shown.body


def test_bad_validation_input_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    cats = {"factual"}
    with pytest.raises(CoimproveError, match="unknown kind"):
        val.check_plants([val.Plant(kind="nope", category="factual")], cats)
    with pytest.raises(CoimproveError, match=r"outside \[0, 1\]"):
        val.check_plants([val.Plant(kind="refusal", category="factual", rate=1.5)], cats)
    with pytest.raises(CoimproveError, match="not among"):
        val.check_plants([val.Plant(kind="refusal", category="nope")], cats)
    with pytest.raises(CoimproveError, match="unknown kind"):
        val.main(val.Settings(plants=[val.Plant(kind="nope", category="x")]), tmp_path / "r")
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValidationError, match="per_category"):
        val.Settings(per_category=0)  # zero prompts per category


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plant", "nope:factual"], "unknown kind"),
        (["--plant", "refusal:factual:1.5"], r"outside \[0, 1\]"),
        (["--plant", "refusal:factual:x"], "rate is not a number"),
        (["--plant", "refusal:nowhere"], "not among"),
        (["--per-category", "0"], "per_category"),
        (["--seeds", "0"], "seeds"),
        (["--controls", "0"], "controls"),
    ],
)
def test_diff_validate_refuses_bad_input_from_the_shell_writing_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "report"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "coimprove", "diff-validate", "--out", str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    said = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Traceback" not in said
    assert re.search(message, said), said
    assert not out.exists()


def test_the_graph_samples_three_times_by_default_as_the_sweep_chose() -> None:
    assert bd.Inputs().samples == 3 == val.Settings().samples
