"""Planted flaws in code changes: a test deleted, a network call added.

A code proposal comes in one of three forms, and the flawed copy keeps the form:

- **a commit** (`coimprove.experiments.code_proposal`): the canary is a *real* commit with the
  same parent, message and author, made in the run's workspace and pinned under its own
  proposal ref; its diff replaces the diff artifact. It is never merged (a canary gate resolves
  as ``canary``, never as an approval) and never run. The repository is the workspace given to
  `CodeCanaries` / `default_canaries` (or a function finding it per proposal), else the
  `GitWorkspace` open in this process that holds the commit; with neither, a commit-bearing
  proposal gets no code canary.
- **inline files** (a `CodeAgent` without a workspace): the file artifacts are rewritten.
- **a diff artifact without a commit**: the diff itself is rewritten (hunk headers recounted).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from coimprove._log import get_logger
from coimprove.canaries import diffs
from coimprove.canaries.base import fresh_id, rebuild
from coimprove.errors import CoimproveError
from coimprove.model import Artifact, Proposal

if TYPE_CHECKING:  # the sandbox layer (and docker) is imported only by whoever has a workspace
    from coimprove.sandbox.workspace import GitWorkspace

log = get_logger("coimprove.canaries")

WorkspaceSource = Union["GitWorkspace", Callable[[Proposal], "GitWorkspace | None"], None]
"""Where a commit-bearing proposal's repository is: a workspace, or a lookup per proposal."""

_DIFF_TYPES = ("text/x-diff", "text/x-patch")


def _is_diff(a: Artifact) -> bool:
    return a.media_type in _DIFF_TYPES or a.name.endswith((".diff", ".patch"))


@dataclass
class _Commit:
    """A proposal's commit, read from its workspace."""

    ws: GitWorkspace
    sha: str
    parent: str
    message: str
    author: str
    changed: dict[str, bytes | None]
    """What the commit writes (None: deletes), relative to its parent."""
    executable: frozenset[str]
    tests: dict[str, str]
    """Test modules in the commit's tree (text)."""

    def text(self, path: str) -> str | None:
        data = self.changed.get(path)
        if data is None:
            return self.tests.get(path)
        try:
            return data.decode()
        except UnicodeDecodeError:
            return None


class CodeCanaries:
    """A deleted test or an added network call, in a commit, inline files or a diff."""

    kinds: tuple[str, ...] = ("deleted_test", "network_call")
    proposal_kinds: tuple[str, ...] = ("code",)

    def __init__(self, workspace: WorkspaceSource = None) -> None:
        self.workspace = workspace

    def mutations(self, proposal: Proposal) -> tuple[str, ...]:
        if proposal.commit is not None:
            commit = self._commit(proposal)
            if commit is None:
                return ()
            texts = {p: commit.text(p) for p in (*commit.changed, *commit.tests)}
            candidates = {p: t for p, t in texts.items() if t is not None}
            return self._kinds(candidates, set(commit.changed))
        files = self._inline_files(proposal)
        if files:
            return self._kinds(files, set(files))
        diff = self._diff_artifact(proposal)
        if diff is None or diff.content is None:
            return ()
        probe = random.Random(0)
        return tuple(
            k
            for k, fn in (
                ("deleted_test", diffs.diff_delete_test),
                ("network_call", diffs.diff_add_network_call),
            )
            if fn(diff.content, probe) is not None
        )

    def apply(self, kind: str, proposal: Proposal, rng: random.Random) -> Proposal | None:
        if proposal.commit is not None:
            return self._apply_commit(kind, proposal, rng)
        files = self._inline_files(proposal)
        if files:
            changed = self._mutate_files(kind, files, set(files), rng)
            if changed is None:
                return None
            artifacts = tuple(
                Artifact.from_text(a.name, changed[a.name], a.media_type)
                if a.name in changed
                else a
                for a in proposal.artifacts
            )
            return rebuild(proposal, rng, artifacts=artifacts)
        diff = self._diff_artifact(proposal)
        if diff is None or diff.content is None:
            return None
        fn = diffs.diff_delete_test if kind == "deleted_test" else diffs.diff_add_network_call
        new = fn(diff.content, rng)
        if new is None:
            return None
        artifacts = tuple(
            Artifact.from_text(a.name, new, a.media_type) if a is diff else a
            for a in proposal.artifacts
        )
        return rebuild(proposal, rng, artifacts=artifacts)

    # -- the three forms --------------------------------------------------------------------

    @staticmethod
    def _kinds(files: dict[str, str], written: set[str]) -> tuple[str, ...]:
        out = []
        if any(
            diffs.is_test_file(p) and diffs.test_blocks(t.splitlines()) for p, t in files.items()
        ):
            out.append("deleted_test")
        if any(diffs.is_network_target(p) for p in written):
            out.append("network_call")
        return tuple(out)

    @staticmethod
    def _mutate_files(
        kind: str, files: dict[str, str], written: set[str], rng: random.Random
    ) -> dict[str, str] | None:
        if kind == "deleted_test":
            targets = sorted(
                p
                for p, t in files.items()
                if diffs.is_test_file(p) and diffs.test_blocks(t.splitlines())
            )
        else:
            targets = sorted(p for p in written if diffs.is_network_target(p))
        if not targets:
            return None
        path = targets[rng.randrange(len(targets))]
        if kind == "deleted_test":
            new = diffs.delete_test(files[path], rng)
        else:
            new = diffs.add_network_call(path, files[path], rng)
        return None if new is None else {path: new}

    @staticmethod
    def _inline_files(proposal: Proposal) -> dict[str, str]:
        return {
            a.name: a.content
            for a in proposal.artifacts
            if a.content is not None and not _is_diff(a) and "." in a.name.rsplit("/", 1)[-1]
        }

    @staticmethod
    def _diff_artifact(proposal: Proposal) -> Artifact | None:
        return next((a for a in proposal.artifacts if _is_diff(a)), None)

    def _workspace_for(self, proposal: Proposal) -> GitWorkspace | None:
        if callable(self.workspace):
            return self.workspace(proposal)
        if self.workspace is not None or proposal.commit is None:
            return self.workspace
        from coimprove.sandbox.workspace import GitWorkspace

        return GitWorkspace.holding(proposal.commit)  # the live workspace that made it

    def _commit(self, proposal: Proposal) -> _Commit | None:
        ws = self._workspace_for(proposal)
        if ws is None or proposal.commit is None:
            return None
        import git

        try:
            commit = ws.repo.commit(proposal.commit)
        except (ValueError, git.BadName, git.GitCommandError):
            log.debug("canaries.commit_unknown", commit=proposal.commit, workspace=str(ws.path))
            return None
        if len(commit.parents) != 1:
            return None
        parent = commit.parents[0].hexsha
        status = ws.repo.git.diff("--name-status", "--no-renames", "-z", parent, commit.hexsha)
        fields = [f for f in status.split("\0") if f]
        snap = ws.snapshot(commit.hexsha)
        changed: dict[str, bytes | None] = {}
        for code, path in zip(fields[::2], fields[1::2], strict=True):
            changed[path] = None if code.startswith("D") else snap.files.get(path)
        tests = {}
        for path, data in snap.files.items():
            if diffs.is_test_file(path) and path not in changed:
                try:
                    tests[path] = data.decode()
                except UnicodeDecodeError:
                    continue
        author = commit.author
        return _Commit(
            ws=ws,
            sha=commit.hexsha,
            parent=parent,
            message=str(commit.message).rstrip("\n"),
            author=f"{author.name} <{author.email}>",
            changed=changed,
            executable=snap.executable & set(changed),
            tests=tests,
        )

    def _apply_commit(self, kind: str, proposal: Proposal, rng: random.Random) -> Proposal | None:
        commit = self._commit(proposal)
        if commit is None:
            return None
        texts = {
            p: t for p in (*commit.changed, *commit.tests) if (t := commit.text(p)) is not None
        }
        changed = self._mutate_files(kind, texts, set(commit.changed), rng)
        if changed is None:
            return None
        pid = fresh_id(rng)
        files: dict[str, bytes | str | None] = dict(commit.changed)
        files.update(changed)
        ws = commit.ws
        sha = ws.proposals().get(pid)  # made before: the gate node ran again on resume
        if sha is None:
            try:
                sha = ws.propose_commit(
                    message=commit.message,
                    author=commit.author,
                    files=files,
                    executable=commit.executable,
                    proposal_id=pid,
                    parent=commit.parent,
                )
            except CoimproveError as exc:  # a WorkspaceError: the change does not apply
                log.warning("canaries.commit_failed", commit=commit.sha, error=str(exc))
                return None
        diff = ws.diff(sha)
        artifacts = tuple(
            Artifact.from_text(a.name, diff, a.media_type) if _is_diff(a) else a
            for a in proposal.artifacts
        )
        payload = dict(proposal.payload)
        paths = payload.get("paths")
        if isinstance(paths, list):
            payload["paths"] = [*paths, *(p for p in sorted(changed) if p not in paths)]
        return rebuild(proposal, rng, payload=payload, artifacts=artifacts, commit=sha, id=pid)
