"""The Ray executor, for real: a local Ray cluster runs the cells as tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from coimprove.ablate.executors import InlineExecutor
from coimprove.ablate.spec import spec_from_yaml
from coimprove.ablate.sweep import run_sweep

ray = pytest.importorskip("ray")  # the `ray` extra

pytestmark = pytest.mark.slow

SPEC = """\
name: on-ray
policies: [{ref: default, label: canary, set: {canary_rate: 0.3}}]
reviewers: [{name: careful, profile: careful}, {name: stamper, profile: rubber_stamper}]
seeds: 1
runs_per_cell: 3
gates_per_run: 3
"""


def test_cells_run_as_ray_tasks_with_the_same_results(tmp_path: Path) -> None:
    from coimprove.ablate.executors import RayExecutor

    spec = spec_from_yaml(SPEC)
    executor = RayExecutor(workers=2)
    try:
        assert executor.workers == 2
        on_ray = run_sweep(spec, tmp_path / "ray", executor=executor, progress=False)
    finally:
        executor.close()
    assert not ray.is_initialized()
    assert on_ray.ok and on_ray.ran == 2
    inline = run_sweep(spec, tmp_path / "inline", executor=InlineExecutor(), progress=False)
    for a, b in zip(on_ray.results, inline.results, strict=True):
        assert a.key == b.key and a.decisions == b.decisions
        assert a.measures is not None and b.measures is not None
        assert a.measures.decisions.verdict == b.measures.decisions.verdict
    assert (tmp_path / "ray" / "report.md").is_file()
