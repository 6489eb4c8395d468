"""Ablations: many headless runs of a graph across models × policies × reviewer panels × seeds.

``coimprove ablate SPEC.yaml --workers N --out DIR`` (or `run_sweep`) runs every cell of a
`SweepSpec` in parallel processes (or on Ray), resumably, and writes ``report.md``,
``report.json``, ``cells.csv`` and figures: the oversight measures of DESIGN.md with 95 %
intervals, plus ground-truth measures only a simulation can have (dead ends stopped, flaws
shipped, reward capture). `validate` checks that the measures recover known reviewer
parameters. Layout: `spec` (YAML), `synthetic` (the graph with hidden truth), `cells` (one
cell in a worker), `measures` (from a cell's ledger), `executors`, `sweep`, `summary` and
`stats` (pooling, intervals), `report` and `plots`, `validate`, `cli`.
"""

from coimprove.ablate.cells import CellResult, run_cell
from coimprove.ablate.executors import InlineExecutor, LocalExecutor, RayExecutor, make_executor
from coimprove.ablate.spec import CellSpec, PanelSpec, PolicyVariant, SweepSpec, load_spec
from coimprove.ablate.sweep import SweepOutcome, run_sweep
from coimprove.ablate.synthetic import SyntheticCanaries, synthetic_workflow
from coimprove.ablate.validate import ValidityReport, validate

__all__ = [
    "CellResult",
    "CellSpec",
    "InlineExecutor",
    "LocalExecutor",
    "PanelSpec",
    "PolicyVariant",
    "RayExecutor",
    "SweepOutcome",
    "SweepSpec",
    "SyntheticCanaries",
    "ValidityReport",
    "load_spec",
    "make_executor",
    "run_cell",
    "run_sweep",
    "synthetic_workflow",
    "validate",
]
