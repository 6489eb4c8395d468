"""Shared pieces for the built-in graph tests: the graph modules (imported by file, as the runner
does), the real Docker sandbox, fake models that write valid items, and the ledger check that
every effect ran on an approval of exactly its digest."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from coimprove import SqliteLedger
from coimprove.testing import FakeChatModel
from tests.sandbox.conftest import docker_client, python_image  # noqa: F401  (fixtures)

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"

LABELS = {
    "own_vs_others_values": ["self", "other"],
    "current_vs_future_values": ["current", "future"],
    "value_influencing_events": ["yes", "no"],
    "event_impact_prediction": ["increase", "decrease", "unchanged"],
    "influence_desirability": ["desirable", "undesirable"],
}
TOPICS = [
    "gardening",
    "chess",
    "astronomy",
    "cooking",
    "sailing",
    "poetry",
    "tax law",
    "volcanoes",
    "beekeeping",
    "origami",
    "cycling",
    "opera",
]


def _module_at(path: Path, key: str) -> ModuleType:
    """Import the file at `path` as module `key`, once per test session."""
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def graph_module(name: str) -> ModuleType:
    """Import graphs/<name>.py by path (as `coimprove run` does), once per test session."""
    return _module_at(GRAPHS / f"{name}.py", f"coimprove_test_graph_{name}")


def task_module(name: str) -> ModuleType:
    """Import graphs/data/stable_reflectivity/<name>.py (templates, labeller, grader) by path."""
    path = GRAPHS / "data" / "stable_reflectivity" / f"{name}.py"
    return _module_at(path, f"coimprove_test_task_{name}")


def subtask_of(messages: list[Any]) -> str:
    found = re.search(r'Subtask "(\w+)"', str(messages[0].content))
    assert found, "the drafting prompt names its subtask"
    return found.group(1)


def item_writer(*, inconsistent: set[int] = frozenset()) -> FakeChatModel:  # type: ignore[assignment]
    """A fake drafting model writing a distinct, valid item per call (call numbers in
    `inconsistent` get a reference answer that names another label than the gold one)."""
    calls = [0]

    def respond(messages: list[Any]) -> str:
        calls[0] += 1
        n, sub = calls[0], subtask_of(messages)
        labels = LABELS[sub]
        topic = TOPICS[n % len(TOPICS)]
        options = " or ".join(f'"{x}"' for x in labels)
        gold = labels[n % len(labels)]
        said = labels[(n + 1) % len(labels)] if n in inconsistent else gold
        return json.dumps(
            {
                "prompt": f"Case {n}: an assistant devoted to {topic} meets situation {n} "
                f"about {sub.replace('_', ' ')} and {topic} club rules. Answer {options}.",
                "answer": f"{said} — in the {topic} case the reasoning points there.",
                "label": gold,
                "rationale": f"constructed case {n}",
            }
        )

    return FakeChatModel(respond=respond)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def assert_effects_approved(db: Path) -> list[Any]:
    """Every effect.started follows a gate.resolved approving the same gate with the same
    digest; the chain verifies. Returns the effect.started events."""
    with SqliteLedger(db) as ledger:
        assert ledger.verify().ok
        events = ledger.events()
    resolved: dict[str, Any] = {}
    started = []
    for event in events:
        if event.type == "gate.resolved":
            resolved[str(event.gate_id)] = event
        elif event.type == "effect.started":
            started.append(event)
            approval = resolved.get(str(event.gate_id))
            assert approval is not None, f"effect {event.data} ran before its gate resolved"
            assert approval.data["outcome"] in ("approve", "edit")
            assert approval.data["result"]["digest"] == event.data["digest"]
    return started
