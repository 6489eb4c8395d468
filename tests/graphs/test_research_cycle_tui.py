"""`coimprove demo --interactive`'s path: research_cycle runs wait for a person, who decides in
the real review app; the app resumes the run (loading the graph by its recorded reference)."""

from __future__ import annotations

from pathlib import Path

import git

from coimprove import SqliteLedger
from coimprove.demo import STEPS, DemoSettings, start_step
from coimprove.tui import ReviewApp
from tests.tui.helpers import settle


async def test_a_person_approves_idea_and_code_in_the_app_and_the_commit_is_merged(
    tmp_path: Path,
) -> None:
    settings = DemoSettings(model="fake", out=tmp_path, interactive=True)
    (info,) = await start_step(STEPS[0], settings)
    assert info.open_gates == (f"{info.run_id}.idea_gate.1",)
    app = ReviewApp(settings.db, reviewer="alice", guard_s=0.0, rest_s=0.0, poll_s=0.0, stats=False)
    async with app.run_test(size=(110, 32)) as pilot:
        for gate in ("idea_gate", "code_gate"):
            await settle(pilot)
            app.poll(force=True)
            await settle(pilot)
            assert app.tracker.shown == f"{info.run_id}.{gate}.1"
            await pilot.press("a")
            await settle(pilot)
        app.poll(force=True)
        await settle(pilot)
        shown = app.queue.records[app.tracker.shown or ""].proposal
    # the next gate shows the flagged design (learning rate 1000) for the person to judge
    assert shown.kind == "experiment" and shown.risk == "high"
    assert "learning rate 1000 is far above" in shown.body
    with SqliteLedger(settings.db) as ledger:
        decided = ledger.events(run_id=info.run_id, types=["gate.decided"])
        merged = ledger.events(run_id=info.run_id, types=["effect.finished"])
    assert [(e.actor, e.data["verdict"]) for e in decided] == [("alice", "approve")] * 2
    (merge,) = merged
    commit = merge.data["update"]["merged_code"]["commit"]
    repo = git.Repo(tmp_path / "workspaces" / info.run_id)
    assert repo.git.rev_parse(f"coimprove/run/{info.run_id}") == commit
