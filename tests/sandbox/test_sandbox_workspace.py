"""Git workspaces: each proposal is a pinned commit on top of the run branch; the branch only
moves when an approved proposal is merged; the sandbox gets exactly a commit's files."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import git
import pytest

from coimprove.sandbox.errors import MergeConflictError, WorkspaceError
from coimprove.sandbox.workspace import PROPOSAL_REFS, GitWorkspace


@pytest.fixture
def ws(tmp_path: Path) -> GitWorkspace:
    return GitWorkspace.create(
        tmp_path / "ws",
        run_id="run-1",
        files={"train.py": b"print(1)\n", "data/table.bin": bytes(range(256))},
    )


def test_a_new_workspace_checks_out_its_run_branch(ws: GitWorkspace) -> None:
    assert ws.repo.active_branch.name == "coimprove/run/run-1"
    assert (ws.path / "train.py").read_bytes() == b"print(1)\n"
    assert ws.files_at(ws.head) == {"train.py": b"print(1)\n", "data/table.bin": bytes(range(256))}


def test_a_proposal_is_pinned_but_does_not_move_the_branch(ws: GitWorkspace) -> None:
    head = ws.head
    sha = ws.propose_commit(
        files={"train.py": "print(2)\n"}, message="try 2", author="agent-7", proposal_id="p1"
    )
    assert ws.head == head
    assert ws.proposals() == {"p1": sha}
    assert ws.repo.git.rev_parse(PROPOSAL_REFS + "p1") == sha
    commit = ws.repo.commit(sha)
    assert [p.hexsha for p in commit.parents] == [head]
    assert commit.author.name == "agent-7"
    assert commit.message.strip() == "try 2"
    assert (ws.path / "train.py").read_bytes() == b"print(1)\n"


def test_diff_shows_exactly_the_proposed_change(ws: GitWorkspace) -> None:
    sha = ws.propose_commit(
        files={"train.py": "print(2)\n", "ü/😀.txt": "new"}, message="m", author="a"
    )
    diff = ws.diff(sha)
    assert "-print(1)\n+print(2)" in diff
    assert "+++ b/ü/😀.txt" in diff
    assert "table.bin" not in diff


def test_files_at_is_exactly_the_commit_tree(ws: GitWorkspace) -> None:
    a = ws.propose_commit(
        files={"extra.py": b"x = 1\n", "data/table.bin": None}, message="a", author="a"
    )
    b = ws.propose_commit(files={"train.py": b"print(3)\n"}, message="b", author="a")
    assert ws.files_at(a) == {"train.py": b"print(1)\n", "extra.py": b"x = 1\n"}
    assert ws.files_at(b)["train.py"] == b"print(3)\n"
    assert "extra.py" not in ws.files_at(b)


def test_a_rejected_proposal_stays_on_record_unmerged(ws: GitWorkspace) -> None:
    rejected = ws.propose_commit(
        files={"bad.py": b"rm -rf /\n"}, message="bad", author="a", proposal_id="rejected-1"
    )
    approved = ws.propose_commit(files={"good.py": b"ok\n"}, message="good", author="a")
    ws.merge(approved)
    assert ws.is_merged(approved)
    assert not ws.is_merged(rejected)
    assert ws.proposals()["rejected-1"] == rejected
    assert "bad.py" not in ws.files_at(ws.head)


def test_merging_an_approval_fast_forwards_to_that_sha(ws: GitWorkspace) -> None:
    sha = ws.propose_commit(files={"train.py": b"print(2)\n"}, message="m", author="a")
    assert ws.merge(sha) == sha
    assert ws.head == sha
    assert (ws.path / "train.py").read_bytes() == b"print(2)\n"
    assert ws.merge(sha) == sha  # idempotent
    status = subprocess.run(
        ["git", "-C", str(ws.path), "status", "--porcelain"], capture_output=True, text=True
    )
    assert status.stdout == ""


def test_independent_approvals_merge_with_a_merge_commit(ws: GitWorkspace) -> None:
    base = ws.head
    a = ws.propose_commit(files={"a.py": b"a\n"}, message="a", author="a")
    b = ws.propose_commit(files={"b.py": b"b\n"}, message="b", author="a", parent=base)
    ws.merge(a)
    head = ws.merge(b, approver="Reviewer <r@example.org>")
    merge = ws.repo.commit(head)
    assert [p.hexsha for p in merge.parents] == [a, b]
    assert merge.author.email == "r@example.org"
    assert {"a.py", "b.py", "train.py"} <= set(ws.files_at(head))
    assert (ws.path / "b.py").is_file()


def test_conflicting_approval_raises_and_changes_nothing(ws: GitWorkspace) -> None:
    base = ws.head
    a = ws.propose_commit(files={"train.py": b"print(2)\n"}, message="a", author="a")
    b = ws.propose_commit(files={"train.py": b"print(3)\n"}, message="b", author="a", parent=base)
    ws.merge(a)
    with pytest.raises(MergeConflictError, match=r"train\.py"):
        ws.merge(b)
    assert ws.head == a
    assert (ws.path / "train.py").read_bytes() == b"print(2)\n"


def test_a_patch_proposal_applies_to_the_branch_head(ws: GitWorkspace) -> None:
    patch = "--- a/train.py\n+++ b/train.py\n@@ -1 +1,2 @@\n print(1)\n+print('patched')\n"
    sha = ws.propose_commit(patch=patch, message="p", author="a")
    assert ws.files_at(sha)["train.py"] == b"print(1)\nprint('patched')\n"
    with pytest.raises(WorkspaceError, match="does not apply"):
        ws.propose_commit(patch=patch.replace("print(1)", "print(9)"), message="p", author="a")


def test_executable_bits_are_kept(ws: GitWorkspace) -> None:
    sha = ws.propose_commit(
        files={"run.sh": b"#!/bin/sh\necho hi\n"}, executable=["run.sh"], message="m", author="a"
    )
    later = ws.propose_commit(
        files={"run.sh": b"#!/bin/sh\necho bye\n"}, message="m", author="a", parent=sha
    )
    assert ws.snapshot(sha).executable == {"run.sh"}
    assert ws.snapshot(later).executable == {"run.sh"}
    ws.merge(later)
    assert (ws.path / "run.sh").stat().st_mode & stat.S_IXUSR


def test_bad_ids_paths_and_duplicates_are_refused(ws: GitWorkspace) -> None:
    ws.propose_commit(files={"x": b"1"}, message="m", author="a", proposal_id="dup")
    with pytest.raises(WorkspaceError, match="already exists"):
        ws.propose_commit(files={"x": b"2"}, message="m", author="a", proposal_id="dup")
    with pytest.raises(WorkspaceError, match="invalid proposal id"):
        ws.propose_commit(files={"x": b"2"}, message="m", author="a", proposal_id="../HEAD")
    with pytest.raises(WorkspaceError, match="unsafe path"):
        ws.propose_commit(files={"../escape": b"2"}, message="m", author="a")
    with pytest.raises(WorkspaceError, match="unknown commit"):
        ws.files_at("0" * 40)


def test_worktree_of_a_user_repo_gets_its_own_run_branch(tmp_path: Path) -> None:
    user = git.Repo.init(tmp_path / "user", initial_branch="main")
    (tmp_path / "user" / "lib.py").write_text("v = 1\n")
    user.index.add(["lib.py"])
    user.index.commit("init", author=git.Actor("u", "u@x"), committer=git.Actor("u", "u@x"))
    ws = GitWorkspace.worktree(tmp_path / "user", tmp_path / "wt", run_id="r2")
    sha = ws.propose_commit(files={"lib.py": b"v = 2\n"}, message="bump", author="agent")
    ws.merge(sha)
    assert (tmp_path / "wt" / "lib.py").read_text() == "v = 2\n"
    assert user.git.rev_parse("coimprove/run/r2") == sha
    assert (tmp_path / "user" / "lib.py").read_text() == "v = 1\n"
    assert user.active_branch.name == "main"


def test_create_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("x")
    with pytest.raises(WorkspaceError, match="not empty"):
        GitWorkspace.create(tmp_path / "busy", run_id="r")
