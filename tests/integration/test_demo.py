"""`coimprove demo` from a shell: real sandbox, the graph's scripted model, scripted reviewers."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import docker
import git
import pytest
from rich.console import Console

from coimprove import SqliteLedger
from coimprove.demo import STEPS, DemoSettings, start_step
from coimprove.sandbox.images import BuiltImage
from tests.graphs.conftest import docker_client, python_image
from tests.tui.test_terminal import Terminal, _wait

__all__ = ["docker_client", "python_image"]

ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = {
    "problem_identification",
    "method_innovation",
    "experiment_design",
    "execution",
    "error_analysis",
    "scientific_communication",
}

pytestmark = pytest.mark.docker


def test_the_demo_runs_from_the_shell_and_reports_by_category(
    tmp_path: Path, docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        ["coimprove", "demo", "--model", "fake", "--out", str(out), "--runs", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"sandbox image python: {python_image.tag}" in text
    assert "oversight by collaboration category" in text
    assert f"ledger:       {out / 'ledger.db'}" in text

    # scripted reviewers decide with seeded randomness per gate id (run ids are fresh), so a
    # run may end at any gate; what holds for every outcome is checked here
    report = json.loads((out / "report.json").read_text())
    assert "problem_identification" in report["by_category"]
    assert set(report["by_category"]) <= CATEGORIES
    for category in report["by_category"]:
        assert category in text
    assert report["pending"] == 0 and report["gates"] >= 2
    with SqliteLedger(out / "ledger.db") as ledger:
        assert ledger.verify().ok
        runs = ledger.events(types=["run.started"])
        finished = ledger.events(types=["run.finished"])
        recorded = ledger.events(types=["experiment.recorded"])
        merged = ledger.events(types=["effect.finished"])
    graphs = sorted(r.data["graph"] for r in runs)
    # --runs 2: research_cycle twice (seeds 0 and 1), behavior_diff once
    assert graphs == ["behavior_diff"] + ["research_cycle"] * 2
    assert len(finished) == 3
    assert all(r.data["metrics"] for r in recorded)  # the sandbox really ran
    for event in merged:
        if event.data["effect"] == "merge_code":
            workspace = out / "workspaces" / str(event.run_id)
            assert f"git workspace: {workspace}" in text
            assert event.data["update"]["merged_code"]["commit"] in git.Repo(workspace).git.log()
    for event in merged:
        if event.data["effect"] == "report":  # behavior_diff's findings, written on approval
            path = Path(event.data["update"]["report"]["markdown"])
            assert path.is_file() and "findings (" in text


async def test_interactive_runs_start_and_wait_at_the_first_gate_for_a_person(
    tmp_path: Path,
) -> None:
    settings = DemoSettings(model="fake", out=tmp_path, interactive=True)
    (info,) = await start_step(STEPS[0], settings)
    assert info.state == "waiting"
    assert info.open_gates == (f"{info.run_id}.idea_gate.1",)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_the_interactive_demo_hands_the_gates_to_a_person_in_a_real_terminal(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo"
    script = tmp_path / "demo.sh"
    script.write_text(
        "unset COLUMNS LINES\nexport TERM=xterm-256color TEXTUAL_ANIMATIONS=none\n"
        f"cd {json.dumps(str(tmp_path))}\n"
        f"{shutil.which('coimprove')} demo --interactive --model fake --out {out}\n"
        "echo DEMO-EXIT $?\nsleep 60\n"
    )
    term = Terminal(f"bash {script}")
    try:
        # both demo steps start and wait: research_cycle's idea gate (the oldest, listed first)
        # and behavior_diff's findings gate
        _wait("the review app", term.shows("2 waiting", "A linear model cannot separate"))
        for _ in range(10):  # the key guard may swallow a key pressed too soon; retry
            term.press("a")
            try:
                _wait("the code gate", term.shows("One-hidden-layer MLP"), timeout=5)
                break
            except AssertionError:
                continue
        term.press("q")
        _wait("the summary", term.shows("DEMO-EXIT 0"), timeout=60)
        screen = term.screen()
    finally:
        term.close()
    assert "demo finished in" in screen
    with SqliteLedger(out / "ledger.db") as ledger:
        (decided,) = ledger.events(types=["gate.decided"])
        opened = [e.data["gate"] for e in ledger.events(types=["gate.opened"])]
    assert decided.data["verdict"] == "approve" and decided.data["reviewer_kind"] == "human"
    assert ".idea_gate.1" in str(decided.gate_id)
    # research_cycle now waits at its code gate; behavior_diff still waits at its findings gate
    assert opened == ["idea_gate", "findings", "code_gate"]
    assert json.loads((out / "report.json").read_text())["pending"] == 2


def test_ten_demos_show_the_careful_and_the_rubber_stamping_reviewer_differ(
    tmp_path: Path, docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    """Ten demos (different seeds, the graph's scripted model, real sandbox): every one prints
    per-reviewer figures with intervals in which the careful reviewer rubber-stamps fewer
    approvals and catches a larger share of the planted flaws, on at least five canaries each
    (every gate may show one, so a run ended at its first gates still measures); over the ten
    the gap is wide; each REPORT.md's numbers are the ledger's."""
    from coimprove.demo import run_demo
    from coimprove.demo_findings import research_finding

    step = next(s for s in STEPS if s.graph == "research_cycle")
    canaries = {"careful-1": [0, 0], "rubber_stamper-2": [0, 0]}
    for seed in range(10):
        settings = DemoSettings(model="fake", out=tmp_path / str(seed), runs=2, seed=2 * seed)
        text = io.StringIO()
        report = run_demo(settings, console=Console(file=text, width=140), steps=[step])
        printed = text.getvalue()
        careful, stamper = (report["by_reviewer"][r] for r in ("careful-1", "rubber_stamper-2"))
        for rid, m in (("careful-1", careful), ("rubber_stamper-2", stamper)):
            canaries[rid][0] += m["canary"]["caught"]
            canaries[rid][1] += m["canary"]["n"]
        assert careful["rubber_stamp_rate"] < stamper["rubber_stamp_rate"], seed
        assert careful["canary"]["n"] >= 5 and stamper["canary"]["n"] >= 5, (seed, canaries)
        assert careful["canary"]["catch_rate"] > stamper["canary"]["catch_rate"], seed
        for rid, m in (("careful-1", careful), ("rubber_stamper-2", stamper)):
            line = next(ln for ln in printed.splitlines() if ln.strip().startswith(rid + " "))
            assert f"{m['canary']['caught']}/{m['canary']['n']} " in line  # with its interval:
            assert line.count("[") == (2 if m["canary"]["n"] else 1), line
        assert "On the same gates, careful-1 stopped" in printed
        with SqliteLedger(settings.db) as ledger:
            run_ids = [e.run_id for e in ledger.events(types=["run.started"]) if e.run_id]
            recorded = {
                e.run_id: e.data["metrics"]["held_out_accuracy"]
                for e in ledger.events(types=["experiment.recorded"])
            }
            finding = research_finding(ledger, run_ids)
        md = (settings.out / "REPORT.md").read_text()
        for cycle in finding.cycles:
            assert cycle.held_out_accuracy == recorded[cycle.run_id]
            assert f"| {cycle.run_id} | {cycle.seed} |" in md
            assert f"| {cycle.held_out_accuracy:.4f} |" in md
    (caught_c, n_c), (caught_s, n_s) = canaries["careful-1"], canaries["rubber_stamper-2"]
    assert n_c >= 50 and n_s >= 50, canaries
    assert caught_c / n_c > caught_s / n_s + 0.4, canaries


def test_a_seed_replays_the_same_demo(
    tmp_path: Path, docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    """Run ids follow from the seed, and reviewers and canaries draw per gate id: two fresh
    demos with one seed decide the same gates the same way and print the same figures; a
    second demo into the same ledger takes new run ids."""
    from coimprove.demo import run_demo

    step = next(s for s in STEPS if s.graph == "research_cycle")

    def demo(out: Path) -> tuple[list[tuple[str | None, str | None, Any]], dict[str, Any]]:
        settings = DemoSettings(model="fake", out=out, runs=2, seed=5)
        report = run_demo(settings, console=Console(file=io.StringIO()), steps=[step])
        with SqliteLedger(settings.db) as ledger:
            decided = [
                (e.gate_id, e.actor, e.data["verdict"])
                for e in ledger.events(types=["gate.decided"])
            ]
        return decided, report["by_reviewer"]

    first, again = demo(tmp_path / "a"), demo(tmp_path / "b")
    assert first == again
    assert {str(g).rsplit(".", 2)[0] for g, _, _ in first[0]} == {
        "research_cycle-s5-1",
        "research_cycle-s5-2",
    }
    more, _ = demo(tmp_path / "a")  # the same ledger: numbered on
    runs = {str(g).rsplit(".", 2)[0] for g, _, _ in more}
    assert "research_cycle-s5-3" in runs and "research_cycle-s5-4" in runs
