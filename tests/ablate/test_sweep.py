"""Sweeps end to end: cells run, results are atomic and resumable, reports parse, plots render."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from coimprove.ablate.cells import CellResult
from coimprove.ablate.executors import InlineExecutor, LocalExecutor
from coimprove.ablate.report import SweepReport
from coimprove.ablate.spec import SweepSpec, spec_from_yaml
from coimprove.ablate.sweep import ERROR, RESULT, cell_dir, run_sweep
from coimprove.ledger import SqliteLedger

ROOT = Path(__file__).resolve().parents[2]

SPEC = """\
name: tiny
policies: [{ref: default, label: canary, set: {canary_rate: 0.4}}]
reviewers:
  - {name: careful, profile: careful}
  - {name: stamper, profile: rubber_stamper}
  - {name: ai, model: fake, think_s: 15}
  - {name: autonomous, profile: autonomous}
seeds: 2
runs_per_cell: 4
gates_per_run: 3
arrival_s: 900
"""


def _spec(text: str = SPEC) -> SweepSpec:
    return spec_from_yaml(text)


def _run(spec: SweepSpec, out: Path) -> object:
    return run_sweep(spec, out, executor=InlineExecutor(), progress=False)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[SweepSpec, Path]:
    out = tmp_path_factory.mktemp("sweep")
    spec = _spec()
    outcome = run_sweep(spec, out, executor=InlineExecutor(), progress=False)
    assert outcome.ok and outcome.ran == len(spec.cells()) == 8
    return spec, out


def test_every_cell_writes_a_result_and_its_own_ledger(swept: tuple[SweepSpec, Path]) -> None:
    spec, out = swept
    for cell in spec.cells():
        folder = cell_dir(out, cell)
        result = CellResult.model_validate_json((folder / RESULT).read_text())
        assert result.ok and result.digest == cell.digest and result.decisions > 0
        assert result.measures is not None
        assert len(result.measures.decisions) == result.decisions
        with SqliteLedger(folder / "ledger.db") as ledger:
            assert ledger.verify().ok
            decided = ledger.query("SELECT COUNT(*) FROM events WHERE type = 'gate.decided'")
            assert decided[0][0] == result.decisions  # the measures are the ledger's
            kinds = {
                r[0]
                for r in ledger.query(
                    "SELECT DISTINCT reviewer_kind FROM events WHERE type = 'gate.decided'"
                )
            }
        assert kinds == {"model" if cell.panel.model else "scripted"}
        assert not list(folder.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_report_files_exist_and_parse(swept: tuple[SweepSpec, Path]) -> None:
    spec, out = swept
    report = SweepReport.model_validate_json((out / "report.json").read_text())
    assert report.cells_ok == report.cells_total == len(spec.cells())
    assert {m.label for m in report.arms} == {"autonomous", "ai_reviewed", "human_in_the_loop"}
    assert len(report.conditions) == 4 and len(report.cells) == 8
    for m in report.cells:
        assert m.decisions > 0
        rate = m.approval_rate
        assert rate.value is not None and rate.lo is not None and rate.hi is not None
        assert rate.lo <= rate.value <= rate.hi
    rows = list(csv.DictReader((out / "cells.csv").open()))
    assert len(rows) == 8
    assert {
        "rubber_stamp_rate",
        "rubber_stamp_rate_lo",
        "d_prime_sound_hi",
        "d_prime_lower_bound_hi",
        "latency_p50_s",
    } <= set(rows[0])
    md = (out / "report.md").read_text()
    assert "## Arms" in md and "figures/fatigue.png" in md
    assert json.loads((out / "spec.json").read_text())["name"] == "tiny"


def test_plots_render_as_readable_pngs(swept: tuple[SweepSpec, Path]) -> None:
    _, out = swept
    from matplotlib.image import imread

    names = {p.name for p in (out / "figures").glob("*.png")}
    assert names == {"fatigue.png", "by_policy.png", "latency.png", "arms.png"}
    for name in names:
        image = imread(out / "figures" / name)
        height, width = image.shape[:2]
        assert width >= 1000 and height >= 500  # large enough to read
        assert image.std() > 0.05  # not blank


def test_autonomous_approves_everything_and_ships_every_flaw(
    swept: tuple[SweepSpec, Path],
) -> None:
    _, out = swept
    report = SweepReport.model_validate_json((out / "report.json").read_text())
    auto = next(m for m in report.arms if m.label == "autonomous")
    assert auto.approval_rate.value == 1.0
    assert auto.canary_catch_rate.value == 0.0
    assert auto.rubber_stamp_rate.value == 1.0  # answered instantly: still a recorded gate
    assert auto.latency_p50_s.value == 0.0
    careful = next(m for m in report.conditions if m.panel == "careful")
    assert careful.flaws_shipped_per_100.value is not None
    assert auto.flaws_shipped_per_100.value is not None
    assert careful.flaws_shipped_per_100.value < auto.flaws_shipped_per_100.value


def test_rerunning_skips_finished_cells_without_touching_them(
    swept: tuple[SweepSpec, Path],
) -> None:
    spec, out = swept
    stamps = {c.key: (cell_dir(out, c) / RESULT).stat().st_mtime_ns for c in spec.cells()}
    outcome = _run(spec, out)
    assert outcome.ran == 0 and outcome.skipped == 8  # type: ignore[attr-defined]
    after = {c.key: (cell_dir(out, c) / RESULT).stat().st_mtime_ns for c in spec.cells()}
    assert after == stamps


def test_a_crashed_cell_is_run_again_and_only_it(tmp_path: Path) -> None:
    spec = _spec(SPEC.replace("seeds: 2", "seeds: 1"))
    first = run_sweep(spec, tmp_path, executor=InlineExecutor(), progress=False)
    assert first.ran == 4
    victim = spec.cells()[1]
    folder = cell_dir(tmp_path, victim)
    (folder / RESULT).unlink()  # as if the process died before writing its result
    (folder / "ledger.db-wal").write_bytes(b"garbage from the dead attempt")
    before = json.loads((cell_dir(tmp_path, spec.cells()[0]) / RESULT).read_text())
    second = run_sweep(spec, tmp_path, executor=InlineExecutor(), progress=False)
    assert (second.ran, second.skipped) == (1, 3)
    again = json.loads((folder / RESULT).read_text())
    original = next(r for r in first.results if r.key == victim.key)
    assert again["decisions"] == original.decisions  # deterministic: the same cell again
    assert json.loads((cell_dir(tmp_path, spec.cells()[0]) / RESULT).read_text()) == before


def test_changing_the_spec_reruns_the_cells_it_changes(tmp_path: Path) -> None:
    spec = _spec(SPEC.replace("seeds: 2", "seeds: 1"))
    run_sweep(spec, tmp_path, executor=InlineExecutor(), progress=False)
    changed = _spec(SPEC.replace("seeds: 2", "seeds: [0, 7]"))
    outcome = run_sweep(changed, tmp_path, executor=InlineExecutor(), progress=False)
    assert (outcome.ran, outcome.skipped) == (4, 4)  # seed 7 is new; seed 0 is unchanged
    bigger = _spec(
        SPEC.replace("seeds: 2", "seeds: 1").replace("runs_per_cell: 4", "runs_per_cell: 5")
    )
    outcome = run_sweep(bigger, tmp_path, executor=InlineExecutor(), progress=False)
    assert outcome.ran == 4


def test_a_failing_cell_is_reported_and_retried_next_time(tmp_path: Path) -> None:
    graph = tmp_path / "broken.py"
    graph.write_text("raise RuntimeError('cannot build this graph')\n")
    spec = spec_from_yaml(
        f"name: broken\ngraph: {graph}:workflow\nreviewers: [{{name: a, profile: careful}}]\n"
        "runs_per_cell: 1\n"
    )
    outcome = run_sweep(spec, tmp_path / "out", executor=InlineExecutor(), progress=False)
    assert not outcome.ok and len(outcome.failed) == 1
    assert "cannot build this graph" in str(outcome.failed[0].error)
    folder = cell_dir(tmp_path / "out", spec.cells()[0])
    assert (folder / ERROR).is_file() and not (folder / RESULT).exists()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["cells_failed"] == 1
    again = run_sweep(spec, tmp_path / "out", executor=InlineExecutor(), progress=False)
    assert again.ran == 1  # failures are never cached


def test_local_processes_give_the_same_results_as_one_process(tmp_path: Path) -> None:
    spec = _spec(SPEC.replace("seeds: 2", "seeds: 1"))
    inline = run_sweep(spec, tmp_path / "a", executor=InlineExecutor(), progress=False)
    pool = LocalExecutor(workers=2)
    try:
        local = run_sweep(spec, tmp_path / "b", executor=pool, progress=False)
    finally:
        pool.close()
    assert local.ok and {r.pid for r in local.results} != {os.getpid()}
    for a, b in zip(inline.results, local.results, strict=True):
        assert a.key == b.key and a.decisions == b.decisions
        assert a.measures is not None and b.measures is not None
        assert a.measures.truth == b.measures.truth
        assert a.measures.decisions.verdict == b.measures.decisions.verdict


def test_cli_runs_a_sweep_and_refuses_a_bad_spec(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        SPEC.replace("seeds: 2", "seeds: 1").replace("runs_per_cell: 4", "runs_per_cell: 2")
    )
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    args = ["coimprove", "ablate", str(spec), "--out", str(tmp_path / "out"), "--json"]
    done = subprocess.run(
        [*args, "--executor", "inline"], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["ran"] == 4 and data["failed"] == [] and data["gates"] > 0
    assert (tmp_path / "out" / "report.md").is_file()
    spec.write_text("name: s\nreviewers: [{name: a, profile: careful}]\nseeds: [1, 1]\n")
    bad = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1
    assert f"{spec}:3: seeds: seeds must be distinct" in bad.stderr
