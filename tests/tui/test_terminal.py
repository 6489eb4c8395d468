"""`coimprove review`, in a real pseudo-terminal (tmux), used as a person would: read the
queue, open the detail, go back, approve, watch the run finish, quit; on an SQLite file and
on a Postgres database. The command is ``python -m coimprove`` of the tree under test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.ledgers import make_backend

ROOT = Path(__file__).resolve().parents[2]
GRAPH = "tests/tui/review_graph.py:workflow"
COIMPROVE = [sys.executable, "-m", "coimprove"]

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*COIMPROVE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _wait(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Terminal:
    """One tmux server of our own (its own socket), one session, 120x40."""

    def __init__(self, command: str) -> None:
        self.socket = f"coimprove-test-{uuid.uuid4().hex[:8]}"
        self._tmux("new-session", "-d", "-s", "review", "-x", "120", "-y", "40", command)

    def _tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "review").stdout

    def alive(self) -> bool:
        return self._tmux("has-session", "-t", "review").returncode == 0

    def press(self, key: str) -> None:
        self._tmux("send-keys", "-t", "review", key)

    def shows(self, *texts: str) -> Callable[[], bool]:
        return lambda: all(t in self.screen() for t in texts)

    def close(self) -> None:
        self._tmux("kill-server")


@pytest.fixture(params=["sqlite", "postgres"])
def terminal_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    db = str(tmp_path / "ledger.db")
    if request.param == "postgres":
        db = make_backend("postgres", request.getfixturevalue("pg_dsn")).url
    env.update(
        COIMPROVE_DB=db,
        COIMPROVE_TEST_EFFECTS=str(tmp_path / "effects.txt"),
        TERM="xterm-256color",
        TEXTUAL_ANIMATIONS="none",
    )
    return env


@pytest.fixture
def terminal(terminal_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def start(*args: str) -> Terminal:
        script = tmp_path / "review.sh"
        exports = "".join(
            f"export {k}={json.dumps(terminal_env[k])}\n"
            for k in ("COIMPROVE_DB", "COIMPROVE_TEST_EFFECTS", "TERM", "TEXTUAL_ANIMATIONS")
        )
        script.write_text(
            f"unset COLUMNS LINES\n{exports}cd {json.dumps(str(ROOT))}\n"
            f"exec {' '.join(COIMPROVE)} review --as alice {' '.join(args)}\n"
        )
        term = Terminal(f"bash {script}")
        opened.append(term)
        return term

    yield start
    for term in opened:
        term.close()


@pytest.mark.slow
def test_a_person_reviews_and_approves_in_a_real_terminal(
    terminal_env: dict[str, str], terminal: Callable[[], Terminal], tmp_path: Path
) -> None:
    (run,) = json.loads(_cli(terminal_env, "run", GRAPH, "--json"))
    assert run["state"] == "waiting"
    term = terminal()
    _wait("the queue", term.shows("1 waiting", "Lower the learning rate", "Approve"))
    term.press("d")
    _wait("the detail with its diff", term.shows("Rationale", "+LR = 0.01", "-LR = 0.1"))
    term.press("Escape")
    _wait("the queue again", term.shows("1 waiting", "press Enter or d to open"))
    for _ in range(10):  # the key guard may swallow a key pressed too soon; look and retry
        term.press("a")
        try:
            _wait("the decision", term.shows("0 waiting"), timeout=3)
            break
        except AssertionError:
            continue
    _wait("the run to finish", lambda: _state(terminal_env, run["run_id"]) == "finished")
    term.press("q")
    _wait("the app to exit", lambda: not term.alive(), timeout=30)

    looks = [
        e
        for e in map(json.loads, _cli(terminal_env, "ledger", "events", "--json").splitlines())
        if e["type"] in ("gate.viewed", "detail.viewed", "gate.decided")
    ]
    # Opening the detail records the gate view and the detail view; the decision ends both
    # looks with the visible time not yet reported, in the same transaction.
    assert [(e["type"], e.get("actor")) for e in looks] == [
        ("gate.viewed", "alice"),
        ("detail.viewed", "alice"),
        ("gate.viewed", "alice"),
        ("detail.viewed", "alice"),
        ("gate.decided", "alice"),
    ]
    seen = {
        kind: sum(e["data"]["visible_s"] for e in looks if e["type"] == kind)
        for kind in ("gate.viewed", "detail.viewed")
    }
    assert seen["gate.viewed"] > seen["detail.viewed"] > 0  # the detail was open a while
    assert (tmp_path / "effects.txt").read_text().count("\n") == 1


def test_training_starts_practice_runs_and_shows_only_their_gates(
    terminal_env: dict[str, str], terminal: Callable[..., Terminal]
) -> None:
    _cli(terminal_env, "run", GRAPH)  # real work, not for practice
    term = terminal("--training", "--graph", GRAPH, "--practice-runs", "3", "--canary-rate", "0.5")
    _wait("the practice queue", term.shows("3 waiting", "TRAINING", "catch rate"))
    term.press("q")
    _wait("the app to exit", lambda: not term.alive(), timeout=30)
    started = [
        e
        for e in map(json.loads, _cli(terminal_env, "ledger", "events", "--json").splitlines())
        if e["type"] == "run.started"
    ]
    assert [e["data"]["policy"] for e in started] == ["default"] + ["default+training"] * 3
    assert {e["data"]["policy_doc"]["defaults"]["canary_rate"] for e in started[1:]} == {0.5}


def test_graph_without_training_is_refused(terminal_env: dict[str, str]) -> None:
    done = subprocess.run(
        [*COIMPROVE, "review", "--graph", GRAPH],
        cwd=ROOT,
        env=terminal_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "use it with --training" in done.stderr


def _state(env: dict[str, str], run_id: str) -> str:
    (info,) = json.loads(_cli(env, "status", run_id, "--json"))
    return str(info["state"])


def test_review_refuses_a_missing_ledger_or_unknown_theme(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COIMPROVE_DB"}
    missing = subprocess.run(
        [*COIMPROVE, "review", "--db", str(tmp_path / "nope.db"), "--as", "alice"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "no ledger at" in missing.stderr
    assert not (tmp_path / "nope.db").exists()
    theme = subprocess.run(
        [*COIMPROVE, "review", "--db", str(tmp_path / "nope.db"), "--theme", "pink"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert theme.returncode == 1 and "light or dark" in theme.stderr
