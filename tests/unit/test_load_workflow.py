from __future__ import annotations

from pathlib import Path

import pytest

from coimprove import RunError, load_workflow


def test_a_workflow_loads_from_a_file_and_records_its_reference() -> None:
    wf = load_workflow("tests/integration/crash_graph.py:idempotent_workflow")
    assert wf.name == "crashy"
    assert wf.ref is not None and wf.ref.endswith("crash_graph.py:idempotent_workflow")
    again = load_workflow(wf.ref)
    assert again.name == wf.name


def test_a_workflow_loads_from_a_module() -> None:
    assert load_workflow("tests.integration.crash_graph:workflow").name == "crashy"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nowhere/graph.py", "does not exist"),
        ("tests/integration/crash_graph.py:nothing", "has no attribute 'nothing'"),
        ("no_such_module_xyz:workflow", "cannot load workflow"),
    ],
)
def test_bad_references_say_what_is_wrong(ref: str, message: str) -> None:
    with pytest.raises(RunError, match=message):
        load_workflow(ref)


def test_an_import_error_in_the_graph_file_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import does_not_exist_anywhere\n")
    with pytest.raises(RunError, match="ModuleNotFoundError"):
        load_workflow(str(broken))
