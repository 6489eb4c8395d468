"""The installed `coimprove` entry point, driven as a person at a shell would."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
GRAPH = "tests/integration/crash_graph.py:workflow"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["coimprove", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def data(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "COIMPROVE_DB": str(tmp_path / "ledger.db"),
        "COIMPROVE_TEST_EFFECTS": str(tmp_path / "effects.txt"),
    }


def test_a_person_runs_reviews_and_decides_from_the_shell(env: dict[str, str]) -> None:
    (run,) = data(cli("run", GRAPH, "--json", env=env))
    assert run["state"] == "waiting"
    (gate,) = data(cli("pending", "--json", env=env))
    assert gate["gate_id"] == run["open_gates"][0] and gate["requirement"] == "0/1 of reviewer"
    shown = data(cli("show", gate["gate_id"], "--as", "alice", "--json", env=env))
    assert shown["proposal"]["digest"] == gate["digest"]
    decided = data(
        cli(
            "decide",
            gate["gate_id"],
            "approve",
            "--as",
            "alice",
            "--digest",
            gate["digest"][7:19],
            "--json",
            env=env,
        )
    )
    assert decided["outcome"] == "approve" and decided["run_state"] == "waiting"
    (second,) = data(cli("pending", "--json", env=env))
    data(
        cli(
            "decide",
            second["gate_id"],
            "request-changes",
            "--as",
            "bob",
            "--note",
            "explain the change",
            "--digest",
            second["digest"],
            "--json",
            env=env,
        )
    )
    (third,) = data(cli("pending", "--json", env=env))
    assert third["round"] == 2
    data(
        cli(
            "decide",
            third["gate_id"],
            "approve",
            "--as",
            "bob",
            "--digest",
            third["digest"],
            env=env,
        )
        and cli("status", "--json", env=env)
    )
    (status,) = data(cli("status", "--json", env=env))
    assert status["state"] == "finished"
    report = data(cli("report", "--json", env=env))
    for key in (
        "gates",
        "decided",
        "pending",
        "latency_s",
        "dwell_s",
        "approval_rate",
        "rubber_stamp_rate",
        "canary",
        "by_reviewer",
    ):
        assert key in report
    assert report["gates"] == 3 and report["decided"] == 3 and report["pending"] == 0
    assert set(report["by_reviewer"]) == {"alice", "bob"}
    assert Path(env["COIMPROVE_TEST_EFFECTS"]).read_text().count("\n") == 2
    assert cli("ledger", "verify", env=env).returncode == 0


def test_bad_decisions_get_one_line_errors_and_change_nothing(env: dict[str, str]) -> None:
    (run,) = data(cli("run", GRAPH, "--json", env=env))
    gate_id = run["open_gates"][0]
    before = sqlite3.connect(env["COIMPROVE_DB"]).execute("SELECT COUNT(*) FROM events").fetchone()
    cases = [
        (
            ("decide", "nope.g0.1", "approve", "--as", "a", "--digest", "0" * 12),
            "no gate 'nope.g0.1'",
        ),
        (("decide", gate_id, "approve", "--as", "a", "--digest", "0" * 12), "now shows"),
        (("decide", gate_id, "approve", "--as", "a", "--digest", "abc"), "12 to 64 hex digits"),
        (
            ("decide", gate_id, "approve", "--as", "a", "--digest", "e0175370cc62zz"),
            "not a sha256 digest",
        ),
        (("decide", gate_id, "maybe", "--as", "a", "--digest", "0" * 12), ""),
    ]
    digest = data(cli("pending", "--json", env=env))[0]["digest"]
    cases += [
        (("decide", gate_id, "maybe", "--as", "a", "--digest", digest), "verdict"),
        (("decide", gate_id, "request-changes", "--as", "a", "--digest", digest), "needs a note"),
        (("decide", gate_id, "approve", "--as", "agent:a0", "--digest", digest), "separation"),
        (
            ("decide", gate_id, "edit", "--as", "a", "--digest", digest, "--payload", "{oops"),
            "not valid JSON",
        ),
        (
            ("decide", gate_id, "edit", "--as", "a", "--digest", digest, "--payload", '{"x": NaN}'),
            "is not JSON data",
        ),
        (("decide", gate_id, "approve", "--as", " a", "--digest", digest), "whitespace"),
        (("decide", gate_id, "approve", "--as", "Agent:A0", "--digest", digest), "separation"),
        (
            ("decide", gate_id, "approve", "--as", "a", "--role", "lead", "--digest", digest),
            "acts as 'lead'",
        ),
        (("status", "r-nope"), "no run 'r-nope'"),
        (("resume", "r-nope"), "no run 'r-nope'"),
    ]
    for args, message in cases:
        result = cli(*args, env=env)
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.startswith("error:"), result.stderr
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    after = sqlite3.connect(env["COIMPROVE_DB"]).execute("SELECT COUNT(*) FROM events").fetchone()
    assert after == before


def test_ledger_verify_fails_on_a_tampered_ledger(env: dict[str, str]) -> None:
    data(cli("run", GRAPH, "--json", env=env))
    head = cli("ledger", "head", env=env).stdout.strip()
    assert cli("ledger", "verify", "--anchor", head, env=env).returncode == 0
    with sqlite3.connect(env["COIMPROVE_DB"]) as raw:
        raw.execute("UPDATE events SET at = at + 1 WHERE seq = 2")
    result = cli("ledger", "verify", env=env)
    assert result.returncode == 1 and "NOT intact: event 2 was altered" in result.stderr


def test_ledger_durability_is_shown_set_and_kept_by_the_runs_that_follow(
    env: dict[str, str],
) -> None:
    data(cli("run", GRAPH, "--json", env=env))
    assert cli("ledger", "durability", env=env).stdout.strip() == "normal"
    refused = cli("ledger", "durability", "sometimes", env=env)
    assert refused.returncode == 1 and "'sometimes' is not one of normal, full" in refused.stderr
    assert cli("ledger", "durability", env=env).stdout.strip() == "normal"
    assert cli("ledger", "durability", "full", env=env).stdout.strip() == "full"
    data(cli("run", GRAPH, "--json", env=env))  # a later process opens it without asking
    assert cli("ledger", "durability", env=env).stdout.strip() == "full"
    assert cli("ledger", "verify", env=env).returncode == 0
    missing = cli("ledger", "durability", "full", "--db", "/nonexistent/l.db")
    assert missing.returncode == 1 and "no ledger at /nonexistent/l.db" in missing.stderr
    shared = cli("ledger", "durability", "full", "--db", "postgresql://me@127.0.0.1:1/none")
    assert shared.returncode == 1 and "server's synchronous_commit" in shared.stderr


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "x.db"
    bogus.write_text("not a database at all " * 50)
    result = cli("status", "--db", str(bogus))
    assert result.returncode == 1 and "not a coimprove ledger" in result.stderr
    missing = cli("status", "--db", str(tmp_path / "nothing.db"))
    assert missing.returncode == 1 and "no ledger at" in missing.stderr


def test_damaged_and_empty_ledgers_get_errors_and_stay_as_they_are(
    env: dict[str, str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    for command in (["ledger", "verify"], ["status"], ["pending"], ["report"]):
        result = cli(*command, "--db", str(empty))
        assert result.returncode == 1 and "empty file, not a coimprove ledger" in result.stderr
    assert empty.stat().st_size == 0
    data(cli("run", GRAPH, "--json", env=env))
    with sqlite3.connect(env["COIMPROVE_DB"]) as raw:
        raw.execute("DROP TRIGGER events_head")
        raw.execute("DROP TABLE events")
    result = cli("ledger", "verify", env=env)
    assert result.returncode == 1 and "NOT intact: cannot read its events" in result.stderr
    assert "Traceback" not in result.stderr


def test_pending_marks_gates_past_their_deadline(env: dict[str, str], tmp_path: Path) -> None:
    import time

    policy = tmp_path / "brief.yaml"
    policy.write_text("name: brief\ndefaults:\n  timeout_s: 1\n  on_timeout: reject\n")
    data(cli("run", GRAPH, "--policy", str(policy), "--json", env=env))
    (gate,) = data(cli("pending", "--json", env=env))
    assert gate["deadline"] == pytest.approx(gate["opened_at"] + 1)
    time.sleep(max(0.0, gate["deadline"] - time.time()) + 0.2)
    (late,) = data(cli("pending", "--json", env=env))
    assert late["overdue"] is True
    assert "(overdue)" in cli("pending", env=env).stdout
    data(cli("resume", "--json", env=env))
    assert data(cli("pending", "--json", env=env)) == []


def test_a_failed_run_makes_run_exit_non_zero(env: dict[str, str], tmp_path: Path) -> None:
    graph = tmp_path / "broken.py"
    graph.write_text(
        "from coimprove import START, Workflow\n"
        "def explode(state):\n"
        "    raise ValueError('agent exploded')\n"
        "workflow = Workflow('broken')\n"
        "workflow.agent('a', explode)\n"
        "workflow.gate('g', proposal_from='a', on_approve='__end__')\n"
        "workflow.edge(START, 'a')\n"
        "workflow.edge('a', 'g')\n"
    )
    result = cli("run", f"{graph}:workflow", env=env)
    assert result.returncode == 1
    assert "failed" in result.stdout and "ValueError: agent exploded" in result.stdout
    assert "1 of 1 run(s) failed" in result.stderr
    missing = cli("run", f"{graph}:nope", env=env)
    assert missing.returncode == 1 and "has no attribute 'nope'" in missing.stderr


def test_policy_check_names_file_and_line(tmp_path: Path) -> None:
    assert "quorum=2" in cli("policy", "check", "strict").stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndefaults:\n  quorum: two\n")
    result = cli("policy", "check", str(bad))
    assert result.returncode == 1 and f"{bad}:3: defaults.quorum" in result.stderr
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: twice\ndefaults:\n  quorum: 1\n  timeout_s: 60\n  quorum: 3\n")
    result = cli("policy", "check", str(twice))
    assert result.returncode == 1 and f"{twice}:5: defaults.quorum: duplicate key" in result.stderr
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    result = cli("policy", "check", str(latin))
    assert result.returncode == 1 and f"{latin}: not UTF-8 text (byte 0xe9" in result.stderr
    assert "Traceback" not in result.stderr
    folder = cli("policy", "check", str(tmp_path))
    assert folder.returncode == 1 and "is a directory" in folder.stderr


def test_headless_run_with_scripted_reviewers(env: dict[str, str], tmp_path: Path) -> None:
    def headless(db: Path) -> tuple[list[Any], dict[str, Any], str]:
        args = ["run", GRAPH, "--reviewer", "careful", "--reviewer", "rubber_stamper"]
        result = cli(*args, "--runs", "5", "--seed", "3", "--json", "--db", str(db), env=env)
        report = data(cli("report", "--json", "--db", str(db), env=env))
        return data(result), report, result.stderr

    runs, report, _ = headless(tmp_path / "a.db")
    assert len(runs) == 5 and all(r["state"] in ("finished", "blocked") for r in runs)
    assert set(report["by_reviewer"]) <= {"careful-0", "rubber_stamper-1"}
    assert report["decided"] >= 5  # at least one decision per run
    # the same command on a fresh ledger reviews every gate the same way
    again, report_again, _ = headless(tmp_path / "b.db")
    assert [r["run_id"] for r in again] == [r["run_id"] for r in runs]
    assert report_again == report
    # in a ledger that already holds those runs, the runs get fresh ids, and it says so
    more, _, stderr = headless(tmp_path / "a.db")
    assert not {r["run_id"] for r in more} & {r["run_id"] for r in runs}
    assert "already holds runs" in stderr


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["status"],
        ["pending"],
        ["show"],
        ["decide"],
        ["resume"],
        ["report"],
        ["ledger"],
        ["ledger", "verify"],
        ["ledger", "head"],
        ["ledger", "durability"],
        ["ledger", "events"],
        ["policy", "check"],
        ["sandbox"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.returncode == 0 and "Usage" in result.stdout


def test_ledger_verify_catches_a_truncation_with_a_rewritten_head_and_says_what_it_cannot_prove(
    env: dict[str, str],
) -> None:
    data(cli("run", GRAPH, "--json", env=env))
    intact = cli("ledger", "verify", env=env)
    assert intact.returncode == 0 and "head witness: event" in intact.stdout
    assert "not proven by this check:" in intact.stdout and "rewritten end to end" in intact.stdout
    with sqlite3.connect(env["COIMPROVE_DB"]) as raw:
        raw.execute("DELETE FROM events WHERE seq > 1")
        raw.execute(
            "UPDATE meta SET value = (SELECT hash FROM events WHERE seq = 1) WHERE key = 'head'"
        )
    result = cli("ledger", "verify", env=env)
    assert result.returncode == 1 and "were deleted from the end" in result.stderr
    assert "Traceback" not in result.stderr
