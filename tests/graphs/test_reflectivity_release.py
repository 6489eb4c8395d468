"""The shipped stable-reflectivity release: >= 300 items per subtask, each passing the checks
again here, labels that follow from the recorded slots, and a datasheet that is exactly what the
generator computes from the release (never typed)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from coimprove.datasheet import PanelScores, read_release, render
from tests.graphs.conftest import GRAPHS, graph_module, task_module

bc = graph_module("benchmark_cocreation")
TASK_DIR = GRAPHS / "data" / "stable_reflectivity"
RELEASES = TASK_DIR / "releases" / "stable_reflectivity"


def release() -> Path:
    return RELEASES / (RELEASES / "LATEST").read_text().strip()


def test_the_release_holds_300_items_per_subtask_that_pass_every_check_again() -> None:
    rows, manifest, text = read_release(release())
    task, _, digest = bc.load_task(bc.DEFAULT_TASK)
    assert manifest["version"] == hashlib.sha256(text.encode()).hexdigest()[:12]
    assert manifest["task"]["digest"] == digest  # built from the task files shipped beside it
    counts = Counter(r["subtask"] for r in rows)
    assert set(counts) == set(task.subtasks) and min(counts.values()) >= 300
    assert manifest["by_subtask"] == dict(sorted(counts.items()))
    grader, templates, labeller = (
        task_module("grader"),
        task_module("templates"),
        task_module("labeller"),
    )
    spec = {name: {"labels": s.labels} for name, s in task.subtasks.items()}
    prompts = Counter(r["prompt"] for r in rows)
    assert max(prompts.values()) == 1
    for row in rows:
        checked = grader.check_item(row, spec)
        assert checked["answerable"] and checked["label_consistent"], (row["id"], checked)
        # the second labelling never disagrees; where it cannot tell, the row says so
        second = labeller.second_label(row["subtask"], row["prompt"])
        assert second in (row["label"], None), row["id"]
        assert row["checks"]["label_check"] == ("agrees" if second else "abstains"), row["id"]
        prov = row["provenance"]
        assert prov["method"] == "template" and prov["template_label"] == row["label"]
        assert templates.label_of(row["subtask"], prov["slots"]) == row["label"]
        assert 1 <= prov["tries"] <= manifest["drafting"]["max_tries"] or prov["tries"] == 0
        assert all(row["checks"][k] for k in ("answerable", "label_consistent", "unique"))


def test_the_datasheet_is_what_the_generator_computes_from_the_release() -> None:
    folder = release()
    rows, manifest, _ = read_release(folder)
    scores = folder / "panel_scores.json"
    panel = PanelScores.model_validate_json(scores.read_text()) if scores.is_file() else None
    assert (folder / "DATASHEET.md").read_text() == render(rows, manifest, panel=panel)
    json.loads((folder / "manifest.json").read_text())
