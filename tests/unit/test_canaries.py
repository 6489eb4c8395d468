"""Canaries: each mutation kind, seeded, indistinguishable, never executed, recorded, scored."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from coimprove import END, START, Decision, Proposal, Runner, SimClock, Workflow
from coimprove.canaries import (
    MUTATION_KINDS,
    BenchmarkCanaries,
    Canaries,
    CodeCanaries,
    ExperimentCanaries,
    default_canaries,
)
from coimprove.canaries.diffs import parse_diff
from coimprove.errors import CoimproveError
from coimprove.experiments import code_proposal, merge_effect
from coimprove.headless import run_headless
from coimprove.ledger import SqliteLedger
from coimprove.metrics import summarize
from coimprove.model import Artifact, GateRequest
from coimprove.reviewers.profiles import Fatigue, load_profile
from coimprove.reviewers.scripted import ScriptedReviewer
from coimprove.sandbox.workspace import GitWorkspace
from tests.helpers import ToyState, linear_workflow

TRAIN = "import json\n\n\ndef main():\n    print(json.dumps({'acc': 0.9}))\n"
TESTS = (
    "from train import main\n\n\ndef test_main_runs():\n    main()\n\n\n"
    "def test_main_prints_accuracy(capsys):\n    main()\n"
    "    assert 'acc' in capsys.readouterr().out\n"
)
NEW_TRAIN = (
    "import json\nimport math\n\n\ndef main():\n    print(json.dumps({'acc': math.sqrt(0.81)}))\n"
)


def experiment() -> Proposal:
    command = "python train.py --lr 3e-4 --eval-split test --features age,income"
    return Proposal(
        kind="experiment",
        title="Lower the learning rate",
        body=f"**Command.** `{command}`\n\n**Parameters.** lr=3e-4",
        payload={
            "command": command,
            "env": {"LR": "3e-4", "TARGET": "churned"},
            "timeout_s": 60.0,
            "expected_outcome": "held-out accuracy above 0.8",
        },
        author="agent:designer",
        risk="medium",
        tags=("experiment",),
    )


def benchmark_item() -> Proposal:
    return Proposal(
        kind="benchmark_item",
        title="Own vs others' values",
        body="**Item (easy).** How many moons does Mars have?\n\n**Reference answer.** 2",
        payload={
            "subtask": "facts",
            "prompt": "How many moons does Mars have?",
            "reference_answer": "2",
            "rubric": "exact number",
            "difficulty": "easy",
        },
        author="agent:items",
    )


@pytest.fixture
def ws(tmp_path: Path) -> GitWorkspace:
    return GitWorkspace.create(
        tmp_path / "repo",
        run_id="r-code",
        files={"train.py": TRAIN.encode(), "tests/test_train.py": TESTS.encode()},
    )


def code_change(ws: GitWorkspace) -> Proposal:
    return code_proposal(
        ws,
        title="Compute accuracy with math.sqrt",
        author="agent:coder",
        files={"train.py": NEW_TRAIN},
        payload={"summary": "use math", "paths": ["train.py"], "test_command": "pytest -q"},
    )


def _tests_in(text: str) -> set[str]:
    return set(re.findall(r"def (test\w+)", text))


# -- each mutation kind ---------------------------------------------------------------------


def test_a_hyperparameter_is_off_by_1000_everywhere_it_is_stated() -> None:
    p = experiment()
    q = ExperimentCanaries().apply("hyperparameter_x1000", p, random.Random(1))
    assert q is not None
    assert q.payload["env"]["LR"] == "0.3"
    assert "--lr 0.3 " in q.payload["command"]
    assert "lr=0.3" in q.body and "3e-4" not in q.body


def test_the_metric_is_computed_on_the_training_set() -> None:
    q = ExperimentCanaries().apply("train_set_metric", experiment(), random.Random(1))
    assert q is not None
    assert "--eval-split train" in q.payload["command"]
    assert "--eval-split train" in q.body


def test_the_label_leaks_into_the_features() -> None:
    q = ExperimentCanaries().apply("leaked_label", experiment(), random.Random(1))
    assert q is not None
    assert "--features age,income,churned" in q.payload["command"]
    assert "--features age,income,churned`" in q.body


def test_experiment_flaws_reach_inline_files_too() -> None:
    p = Proposal(
        kind="experiment",
        title="Evaluate",
        payload={
            "command": "python run.py",
            "files": {"run.py": 'X = df.drop(columns=["label"])\nscore(model, test_loader)\n'},
        },
        author="agent:a",
    )
    family = ExperimentCanaries()
    assert set(family.mutations(p)) == {"train_set_metric", "leaked_label"}
    leaked = family.apply("leaked_label", p, random.Random(0))
    on_train = family.apply("train_set_metric", p, random.Random(0))
    assert leaked is not None and leaked.payload["files"]["run.py"].startswith("X = df\n")
    assert on_train is not None and "train_loader" in on_train.payload["files"]["run.py"]


@pytest.mark.parametrize(
    ("answer", "wrong"),
    [("2", r"^(?!2$)\d+$"), ("B", r"^[ACD]$"), ("Yes, it is stable.", r"^No, it is stable\.$")],
)
def test_a_benchmark_item_gets_a_wrong_answer_of_the_same_shape(answer: str, wrong: str) -> None:
    p = benchmark_item()
    p = p.model_copy(
        update={
            "payload": {**p.payload, "reference_answer": answer},
            "body": f"**Reference answer.** {answer}",
        }
    )
    q = BenchmarkCanaries().apply("wrong_answer", p, random.Random(4))
    assert q is not None
    assert re.match(wrong, q.payload["reference_answer"])
    assert q.body == f"**Reference answer.** {q.payload['reference_answer']}"


def test_a_deleted_test_is_a_real_commit_with_the_same_parent(ws: GitWorkspace) -> None:
    p = code_change(ws)
    q = CodeCanaries(ws).apply("deleted_test", p, random.Random(0))
    assert q is not None and q.commit is not None and q.commit != p.commit
    real, planted = ws.repo.commit(p.commit), ws.repo.commit(q.commit)
    assert planted.parents == real.parents
    assert planted.message == real.message and planted.author.name == real.author.name
    assert ws.proposals()[q.id] == q.commit  # pinned under its own proposal ref
    kept = _tests_in(ws.files_at(q.commit)["tests/test_train.py"].decode())
    assert len(kept) == 1 and kept < _tests_in(TESTS)
    assert ws.files_at(q.commit)["train.py"].decode() == NEW_TRAIN  # the real change is kept
    diff = q.artifacts[0].content or ""
    assert diff == ws.diff(q.commit)
    assert re.search(r"^-def test_", diff, re.M)
    assert q.payload["paths"] == ["train.py", "tests/test_train.py"]


def test_a_network_call_is_added_to_the_changed_code(ws: GitWorkspace) -> None:
    p = code_change(ws)
    q = CodeCanaries(ws).apply("network_call", p, random.Random(0))
    assert q is not None and q.commit is not None
    text = ws.files_at(q.commit)["train.py"].decode()
    assert "import urllib.request" in text and re.search(r"urllib\.request\.url\w+\(", text)
    compile(text, "train.py", "exec")  # still valid Python
    assert "+import urllib.request" in (q.artifacts[0].content or "")


def test_code_flaws_rewrite_inline_files_and_plain_diffs() -> None:
    inline = Proposal(
        kind="code",
        title="Add tests",
        payload={"summary": "s", "paths": ["train.py", "tests/test_train.py"]},
        artifacts=(
            Artifact.from_text("train.py", TRAIN),
            Artifact.from_text("tests/test_train.py", TESTS),
        ),
        author="agent:coder",
    )
    family = CodeCanaries()
    assert family.mutations(inline) == ("deleted_test", "network_call")
    q = family.apply("deleted_test", inline, random.Random(0))
    assert q is not None
    assert len(_tests_in(q.artifacts[1].content or "")) == 1
    assert q.artifacts[0] == inline.artifacts[0]

    diff = (
        "diff --git a/tests/test_x.py b/tests/test_x.py\n--- a/tests/test_x.py\n"
        "+++ b/tests/test_x.py\n@@ -1,2 +1,8 @@\n import x\n \n+def test_a():\n"
        "+    assert x.a()\n+\n+\n+def test_b():\n+    assert x.b()\n"
        "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -3,2 +3,3 @@ def a():\n"
        "     return 1\n+    # cached\n \n"
    )
    patch = Proposal(
        kind="code",
        title="Tests for x",
        artifacts=(Artifact.from_text("changes.diff", diff, "text/x-diff"),),
        author="agent:coder",
    )
    assert family.mutations(patch) == ("deleted_test", "network_call")
    for kind in family.kinds:
        made = family.apply(kind, patch, random.Random(2))
        assert made is not None
        _, files = parse_diff(made.artifacts[0].content or "")
        for f in files:  # every hunk header still counts its lines
            for h in f.hunks:
                header = h.header(0)
                new = int(header.split("+")[1].split(",")[1].split(" ")[0])
                assert new == sum(1 for x in h.lines if x[:1] in (" ", "+", ""))
        assert (made.artifacts[0].content or "") != diff


def test_a_commit_is_planted_in_the_live_workspace_that_holds_it(ws: GitWorkspace) -> None:
    p = code_change(ws)
    assert GitWorkspace.holding(p.commit or "") is ws
    made = default_canaries().mutate(p, random.Random(0))
    assert made is not None and made[1] in CodeCanaries.kinds
    assert made[0].commit in ws.proposals().values()


def test_a_commit_no_workspace_holds_gets_no_code_canary(ws: GitWorkspace) -> None:
    unknown = code_change(ws).model_copy(update={"commit": "0123456789" * 4})
    assert GitWorkspace.holding("0123456789" * 4) is None
    assert CodeCanaries().mutations(unknown) == ()
    assert default_canaries().mutate(unknown, random.Random(0)) is None


# -- seeding and choice ---------------------------------------------------------------------


def test_the_same_seed_gives_the_same_canary_and_seeds_vary_the_flaw(ws: GitWorkspace) -> None:
    source = default_canaries(workspace=ws)
    p = code_change(ws)
    for proposal in (experiment(), benchmark_item(), p):
        first = source.mutate(proposal, random.Random("7:r1.review.1"))
        again = source.mutate(proposal, random.Random("7:r1.review.1"))
        assert first is not None and again is not None
        assert (first[0].digest, first[1], first[0].id) == (again[0].digest, again[1], again[0].id)
    kinds = {source.mutate(experiment(), random.Random(s))[1] for s in range(40)}  # type: ignore[index]
    assert kinds == {"hyperparameter_x1000", "train_set_metric", "leaked_label"}


def test_the_family_made_for_a_proposal_kind_is_preferred() -> None:
    source = default_canaries()
    item = benchmark_item()
    assert [k for _, k in source.candidates(item)] == ["wrong_answer"]
    idea = Proposal(kind="idea", title="t", payload={"lr": 0.1}, author="agent:a")
    assert [k for _, k in source.candidates(idea)] == ["hyperparameter_x1000"]
    plain = Proposal(kind="idea", title="t", body="just words", author="agent:a")
    assert source.mutate(plain, random.Random(0)) is None


def test_only_restricts_the_mutations_and_rejects_unknown_ones() -> None:
    only = default_canaries(only=["leaked_label"])
    for s in range(10):
        made = only.mutate(experiment(), random.Random(s))
        assert made is not None and made[1] == "leaked_label"
    with pytest.raises(CoimproveError, match="unknown canary mutation"):
        Canaries([ExperimentCanaries()], only=["wrong_answer"])


# -- indistinguishable ----------------------------------------------------------------------


@pytest.mark.parametrize("make", [experiment, benchmark_item])
def test_a_canary_has_the_form_of_the_real_proposal(make: Any) -> None:
    real = make()
    for s in range(12):
        made = default_canaries().mutate(real, random.Random(s))
        assert made is not None
        canary = made[0]
        for field in ("kind", "author", "risk", "tags", "commit", "revises", "truth"):
            assert getattr(canary, field) == getattr(real, field)
        assert canary.payload.keys() == real.payload.keys()
        assert canary.id != real.id and canary.id.startswith("p-") and len(canary.id) == 14
        dumped = canary.model_dump(mode="json")
        assert Proposal.model_validate(dumped).digest == canary.digest  # a valid, fresh digest
        assert canary.digest != real.digest
        assert dumped.keys() == real.model_dump(mode="json").keys()


# -- in a run: shown, never executed, recorded ----------------------------------------------


def _planted_policy(tmp_path: Path) -> str:
    path = tmp_path / "planted.yaml"
    path.write_text("name: planted\ndefaults:\n  canary_rate: 0.999\n")
    return str(path)


def _approve(runner: Runner, gate_id: str) -> None:
    record = runner.gate(gate_id)
    runner.decide(
        gate_id, Decision(verdict="approve", reviewer="alice", digest=record.request.digest)
    )


async def test_an_approved_canary_never_runs_and_the_ledger_records_its_mutation(
    tmp_path: Path,
) -> None:
    effects = tmp_path / "effects.txt"
    async with Runner(tmp_path / "l.db", clock=SimClock(1000.0)) as runner:
        info = await runner.start(
            linear_workflow("planted", side_effects=effects), policy=_planted_policy(tmp_path)
        )
        assert runner.canaries is not None  # the built-in source, since none was given
        (canary,) = runner.open_gates(info.run_id)
        assert canary.hidden["canary"] is True and canary.request.proposal.payload["lr"] == 100.0
        _approve(runner, canary.gate_id)
        await runner.advance()
        assert not effects.exists()  # approved, but a canary: nothing ran
        (real,) = runner.open_gates(info.run_id)
        assert real.hidden["canary"] is False and real.request.proposal.payload["lr"] == 0.1
        _approve(runner, real.gate_id)
        await runner.advance()
        assert runner.info(info.run_id).state == "finished"
        lines = effects.read_text().splitlines()
        assert len(lines) == 1 and "'lr': 0.1" in lines[0]
        (revealed,) = runner.ledger.events(types=["canary.revealed"])
        assert revealed.gate_id == canary.gate_id
        assert revealed.data["mutation"] == "hyperparameter_x1000"
        assert revealed.data["caught"] is False
        assert revealed.data["original_digest"] == real.request.digest
        started = runner.ledger.events(types=["effect.started"])
        assert [e.gate_id for e in started] == [real.gate_id]

        # what the reviewer was shown has the same schema and says nothing about canaries
        shown = [canary.request.model_dump(mode="json"), real.request.model_dump(mode="json")]
        assert shown[0].keys() == shown[1].keys()
        assert shown[0]["proposal"].keys() == shown[1]["proposal"].keys()
        text = json.dumps(shown[0]).lower()
        assert "canary" not in text
        assert not any(kind in text for kind in MUTATION_KINDS)
        GateRequest.model_validate(shown[0])


def _code_workflow(ws: GitWorkspace) -> Workflow:
    wf = Workflow("code-canary", state=ToyState)

    def propose(state: Any) -> Proposal:
        return code_change(ws)

    wf.agent("coder", propose, kind="code")
    wf.gate("review", proposal_from="coder", on_approve="merge")
    wf.effect("merge", merge_effect(ws), gate="review")
    wf.edge(START, "coder")
    wf.edge("coder", "review")
    wf.edge("merge", END)
    return wf


async def test_an_approved_canary_commit_is_never_merged(tmp_path: Path, ws: GitWorkspace) -> None:
    base = ws.head
    async with Runner(tmp_path / "l.db", clock=SimClock(0.0)) as runner:  # built-in canaries
        info = await runner.start(_code_workflow(ws), policy=_planted_policy(tmp_path))
        (canary,) = runner.open_gates(info.run_id)
        planted = canary.request.proposal.commit
        assert planted is not None and canary.hidden["mutation"] in ("deleted_test", "network_call")
        _approve(runner, canary.gate_id)
        await runner.advance()
        assert ws.head == base  # nothing merged
        (real,) = runner.open_gates(info.run_id)
        _approve(runner, real.gate_id)
        await runner.advance()
        assert ws.head == real.request.proposal.commit
        assert not ws.is_merged(planted)
        assert planted in ws.proposals().values()  # on record, pinned, never merged


# -- measured ---------------------------------------------------------------------------------


async def test_catch_rate_and_d_prime_from_a_headless_run_with_the_canary_policy(
    tmp_path: Path,
) -> None:
    results = {}
    # a careful reviewer who does not tire over the simulated day, and one who never looks
    sharp = load_profile("careful").model_copy(
        update={"catch_rate": 0.95, "skim_rate": 0.0, "fatigue": Fatigue()}
    )
    for name, profile in (("sharp", sharp), ("autonomous", load_profile("autonomous"))):
        result = await run_headless(
            linear_workflow(f"canary-{name}", policy="canary", pairs=2),
            [ScriptedReviewer(profile, id=f"{name}-1", seed=3)],
            runs=100,
            db=tmp_path / f"{name}.db",
            seed=11,
        )
        assert result.db is not None
        ledger = SqliteLedger(result.db)
        try:
            revealed = ledger.events(types=["canary.revealed"])
            measures = summarize(ledger)["all"].canary
        finally:
            ledger.close()
        assert 8 <= len(revealed) <= 40  # about 10% of ~200 openings
        assert {e.data["mutation"] for e in revealed} == {"hyperparameter_x1000"}
        # scored per decision, escalations (passing it up, not deciding) left out
        verdicts = [v for e in revealed for v in e.data["verdicts"] if v != "escalate"]
        caught = sum(1 for v in verdicts if v in ("reject", "request_changes"))
        assert measures.n == len(verdicts)
        assert measures.caught == caught
        assert measures.catch_rate == pytest.approx(caught / len(verdicts))
        assert measures.d_prime_lower_bound.value is not None
        assert measures.d_prime_sound.value is None  # linear_workflow labels no proposal
        results[name] = measures
    # the measures recover what the profiles were configured to do
    assert results["autonomous"].catch_rate == 0.0  # approves everything unseen
    assert results["sharp"].catch_rate is not None and results["sharp"].catch_rate > 0.7
    sharp, autonomous = (results[k].d_prime_lower_bound.value for k in ("sharp", "autonomous"))
    assert sharp is not None and autonomous is not None and sharp > autonomous + 1


class _Broken:
    kinds: tuple[str, ...] = ("broken",)
    proposal_kinds: tuple[str, ...] = ("experiment",)

    def mutations(self, proposal: Proposal) -> tuple[str, ...]:
        return self.kinds

    def apply(self, kind: str, proposal: Proposal, rng: random.Random) -> Proposal | None:
        raise ValueError("a bug in a canary family")


def test_a_failing_family_is_skipped_not_fatal() -> None:
    source = Canaries([_Broken(), ExperimentCanaries()])
    made = source.mutate(experiment(), random.Random(0))
    assert made is not None and made[1] in ExperimentCanaries.kinds
    assert Canaries([_Broken()]).mutate(experiment(), random.Random(0)) is None
