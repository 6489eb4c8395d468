"""GitWorkspace: the code an agent works on, one git branch per run, one commit per proposal.

- `GitWorkspace.create(path, run_id=…)` makes a fresh repository for a run;
  `GitWorkspace.worktree(user_repo, path, run_id=…)` adds a worktree of an existing repository.
  The run's branch is `coimprove/run/<run_id>`.
- `propose_commit(files=… | patch=…, message, author)` writes a commit whose parent is the run
  branch's head, *without* moving the branch or touching the working tree, and pins it under
  `refs/coimprove/proposals/<id>`: a rejected proposal stays on record and is never merged.
- `diff(sha)` is what a gate shows; `files_at(sha)` / `snapshot(sha)` are exactly the files a
  sandbox runs; `merge(sha)` (after approval) fast-forwards or merges the run branch.
"""

from __future__ import annotations

import re
import tempfile
import uuid
import weakref
from collections.abc import Collection, Mapping
from pathlib import Path

import git
from pydantic import BaseModel, ConfigDict, Field

from coimprove._log import get_logger
from coimprove.sandbox.archive import safe_relpath
from coimprove.sandbox.errors import ArchiveError, MergeConflictError, WorkspaceError

log = get_logger("coimprove.sandbox.workspace")

PROPOSAL_REFS = "refs/coimprove/proposals/"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
COMMITTER = ("coimprove", "coimprove@localhost")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_AUTHOR = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>\s]+)>\s*$")


_LIVE: weakref.WeakSet[GitWorkspace] = weakref.WeakSet()
"""Workspaces open in this process (see `GitWorkspace.holding`)."""


class TreeSnapshot(BaseModel):
    """The files of one commit, ready to copy into a sandbox."""

    model_config = ConfigDict(frozen=True)

    commit: str
    files: dict[str, bytes]
    executable: frozenset[str] = frozenset()
    skipped: dict[str, str] = Field(default_factory=dict, description="path → why not included")


class GitWorkspace:
    """A run's git repository (or worktree). Construct with `create`, `worktree` or `open`."""

    def __init__(self, repo: git.Repo, *, run_id: str) -> None:
        _check_id(run_id, "run id")
        self.repo = repo
        self.run_id = run_id
        self.branch = f"coimprove/run/{run_id}"
        _LIVE.add(self)

    @classmethod
    def holding(cls, sha: str) -> GitWorkspace | None:
        """A workspace open in this process whose repository has commit `sha` (or None).

        How a code proposal's commit finds its repository when all one has is the proposal
        (the built-in canaries use it to plant a flawed sibling commit).
        """
        if not _SHA.match(sha):
            return None
        for ws in list(_LIVE):
            status, _, _ = ws.repo.git.execute(
                ["git", "cat-file", "-e", f"{sha}^{{commit}}"],
                with_extended_output=True,
                with_exceptions=False,
            )
            if status == 0:
                return ws
        return None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        run_id: str,
        files: Mapping[str, bytes] | None = None,
        message: str = "Initial files",
        author: str = "coimprove",
    ) -> GitWorkspace:
        """A new repository at `path` (absent or empty) whose run branch holds `files`."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise WorkspaceError(f"{path} exists and is not empty")
        _check_id(run_id, "run id")
        repo = git.Repo.init(path, initial_branch=f"coimprove/run/{run_id}")
        ws = cls(repo, run_id=run_id)
        tree = ws._build_tree(None, files or {}, (), None)
        sha = ws._commit_tree(tree, [], message, author)
        ws._git("update-ref", f"refs/heads/{ws.branch}", sha, "0" * 40)
        ws._git("read-tree", "-u", "--reset", sha)
        log.info("workspace.created", path=str(path), branch=ws.branch, head=sha)
        return ws

    @classmethod
    def worktree(
        cls, repo_path: str | Path, path: str | Path, *, run_id: str, base: str = "HEAD"
    ) -> GitWorkspace:
        """A worktree of the user's repository at `path`, on a new run branch from `base`."""
        _check_id(run_id, "run id")
        try:
            user_repo = git.Repo(repo_path)
            user_repo.git.worktree("add", "-b", f"coimprove/run/{run_id}", str(path), base)
        except (git.GitCommandError, git.InvalidGitRepositoryError, git.NoSuchPathError) as e:
            raise WorkspaceError(f"cannot add a worktree of {repo_path} at {path}: {e}") from e
        return cls(git.Repo(path), run_id=run_id)

    @classmethod
    def open(cls, path: str | Path, *, run_id: str) -> GitWorkspace:
        """An existing workspace."""
        try:
            repo = git.Repo(path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as e:
            raise WorkspaceError(f"{path} is not a git repository") from e
        ws = cls(repo, run_id=run_id)
        ws.head  # noqa: B018 - raises if the run branch is missing
        return ws

    @property
    def path(self) -> Path:
        """The working tree (or the git dir of a bare repository)."""
        return Path(self.repo.working_tree_dir or self.repo.git_dir)

    @property
    def head(self) -> str:
        """The SHA the run branch points at."""
        return self._resolve(f"refs/heads/{self.branch}")

    # -- proposals ---------------------------------------------------------------------------

    def propose_commit(
        self,
        *,
        message: str,
        author: str,
        files: Mapping[str, bytes | str | None] | None = None,
        patch: str | None = None,
        executable: Collection[str] = (),
        proposal_id: str | None = None,
        parent: str | None = None,
    ) -> str:
        """Commit a proposal on top of the run branch (default) and pin it; returns its SHA.

        `files` maps paths to new contents (None deletes); `patch` is a unified diff applied
        with `git apply`. The run branch does not move: only `merge` does that.
        """
        if files is None and patch is None:
            raise WorkspaceError("a proposal needs files or a patch")
        pid = proposal_id or uuid.uuid4().hex[:12]
        _check_id(pid, "proposal id")
        ref = PROPOSAL_REFS + pid
        if self._ref_exists(ref):
            raise WorkspaceError(f"proposal {pid!r} already exists ({ref})")
        base = self._resolve(parent) if parent else self.head
        changes = {k: (v.encode() if isinstance(v, str) else v) for k, v in (files or {}).items()}
        tree = self._build_tree(base, changes, executable, patch)
        sha = self._commit_tree(tree, [base], message, author)
        self._git("update-ref", ref, sha, "0" * 40)
        log.info("workspace.proposed", run=self.run_id, proposal=pid, sha=sha, parent=base)
        return sha

    def proposal_ref(self, proposal_id: str) -> str:
        """The ref that pins a proposal."""
        _check_id(proposal_id, "proposal id")
        return PROPOSAL_REFS + proposal_id

    def proposals(self) -> dict[str, str]:
        """Every pinned proposal: id → SHA."""
        out = self._git("for-each-ref", "--format=%(refname) %(objectname)", PROPOSAL_REFS)
        result: dict[str, str] = {}
        for line in out.splitlines():
            ref, _, sha = line.partition(" ")
            result[ref[len(PROPOSAL_REFS) :]] = sha
        return result

    def diff(self, sha: str, *, base: str | None = None) -> str:
        """The unified diff of a commit against `base` (default: its first parent)."""
        commit = self._commit(sha)
        if base is not None:
            old = self._resolve(base)
        else:
            old = commit.parents[0].hexsha if commit.parents else EMPTY_TREE
        return self._git(
            "-c",
            "core.quotePath=false",
            "diff",
            "--no-color",
            "--no-ext-diff",
            "-M",
            old,
            commit.hexsha,
        )

    def files_at(self, sha: str) -> dict[str, bytes]:
        """Every regular file in the commit's tree (path → bytes)."""
        return self.snapshot(sha).files

    def snapshot(self, sha: str) -> TreeSnapshot:
        """The commit's files plus executable bits; symlinks and submodules are skipped."""
        commit = self._commit(sha)
        files: dict[str, bytes] = {}
        executable: set[str] = set()
        skipped: dict[str, str] = {}
        for item in commit.tree.traverse():
            if not isinstance(item, git.Blob):
                if isinstance(item, git.Submodule):
                    skipped[str(item.path)] = "submodule"
                continue
            path = str(item.path)
            kind = item.mode & 0o170000
            if kind == 0o120000:
                skipped[path] = "symlink"
                continue
            files[path] = item.data_stream.read()
            if item.mode & 0o111:
                executable.add(path)
        return TreeSnapshot(
            commit=commit.hexsha, files=files, executable=frozenset(executable), skipped=skipped
        )

    def is_merged(self, sha: str) -> bool:
        """Whether the commit is reachable from the run branch."""
        return self._is_ancestor(self._resolve(sha), self.head)

    def merge(self, sha: str, *, message: str | None = None, approver: str = "coimprove") -> str:
        """Bring an approved commit into the run branch; returns the branch's new head.

        Fast-forwards when possible (the branch then points at exactly `sha`), else writes a
        merge commit; raises `MergeConflictError` (nothing changes) on conflicts.
        """
        target = self._resolve(sha)
        head = self.head
        if self._is_ancestor(target, head):
            return head
        if self._is_ancestor(head, target):
            new = target
        else:
            status, out, err = self.repo.git.execute(
                ["git", "merge-tree", "--write-tree", "--name-only", head, target],
                with_extended_output=True,
                with_exceptions=False,
            )
            if status != 0:
                raise MergeConflictError(
                    f"proposal {target[:12]} conflicts with {self.branch} at {head[:12]}:\n"
                    f"{out or err}"
                )
            tree = str(out).splitlines()[0].strip()
            msg = message or f"Merge approved proposal {target[:12]} into {self.branch}"
            new = self._commit_tree(tree, [head, target], msg, approver)
        self._sync_worktree(head, new)
        self._git("update-ref", f"refs/heads/{self.branch}", new, head)
        log.info("workspace.merged", run=self.run_id, sha=target, head=new)
        return new

    # -- plumbing ----------------------------------------------------------------------------

    def _git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        try:
            return str(self.repo.git.execute(["git", *args], env=env))
        except git.GitCommandError as e:
            raise WorkspaceError(f"git {args[0]} failed: {e.stderr.strip() or e}") from e

    def _resolve(self, rev: str) -> str:
        try:
            return str(self.repo.git.rev_parse("--verify", "--quiet", f"{rev}^{{commit}}"))
        except git.GitCommandError as e:
            raise WorkspaceError(f"unknown commit {rev!r} in {self.path}") from e

    def _commit(self, sha: str) -> git.Commit:
        return self.repo.commit(self._resolve(sha))

    def _ref_exists(self, ref: str) -> bool:
        status, _, _ = self.repo.git.execute(
            ["git", "show-ref", "--verify", "--quiet", ref],
            with_extended_output=True,
            with_exceptions=False,
        )
        return status == 0

    def _is_ancestor(self, a: str, b: str) -> bool:
        status, _, _ = self.repo.git.execute(
            ["git", "merge-base", "--is-ancestor", a, b],
            with_extended_output=True,
            with_exceptions=False,
        )
        return status == 0

    def _build_tree(
        self,
        base: str | None,
        files: Mapping[str, bytes | None],
        executable: Collection[str],
        patch: str | None,
    ) -> str:
        """A tree: `base`'s tree with `files` written/deleted and `patch` applied."""
        execs = {_relpath(p) for p in executable}
        old_modes: dict[str, int] = {}
        if base is not None:
            for item in self.repo.commit(base).tree.traverse():
                if isinstance(item, git.Blob):
                    old_modes[str(item.path)] = item.mode
        with tempfile.TemporaryDirectory(prefix="coimprove-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if base is None:
                self._git("read-tree", "--empty", env=env)
            else:
                self._git("read-tree", base, env=env)
            if files:
                blobs = self._store_blobs(Path(tmp), [d for d in files.values() if d is not None])
                records = bytearray()
                for name, data in files.items():
                    rel = _relpath(name)
                    if data is None:
                        records += f"0 {'0' * 40}\t{rel}".encode() + b"\0"
                        continue
                    mode = "100755" if rel in execs or old_modes.get(rel, 0) & 0o111 else "100644"
                    records += f"{mode} {blobs.pop(0)}\t{rel}".encode() + b"\0"
                info = Path(tmp) / "records"
                info.write_bytes(bytes(records))
                with info.open("rb") as fh:
                    try:
                        self.repo.git.execute(
                            ["git", "update-index", "-z", "--index-info"], istream=fh, env=env
                        )
                    except git.GitCommandError as e:
                        raise WorkspaceError(f"cannot stage files: {e.stderr.strip()}") from e
            if patch is not None:
                patch_file = Path(tmp) / "proposal.patch"
                patch_file.write_text(patch if patch.endswith("\n") else patch + "\n")
                try:
                    self.repo.git.execute(
                        ["git", "apply", "--cached", "--whitespace=nowarn", str(patch_file)],
                        env=env,
                    )
                except git.GitCommandError as e:
                    raise WorkspaceError(f"the patch does not apply: {e.stderr.strip()}") from e
            return self._git("write-tree", env=env)

    def _store_blobs(self, tmp: Path, contents: list[bytes]) -> list[str]:
        """Write blobs into the object store (one `git hash-object -w`); returns their SHAs."""
        if not contents:
            return []
        paths = []
        for i, data in enumerate(contents):
            path = tmp / f"blob-{i}"
            path.write_bytes(data)
            paths.append(str(path))
        out = self._git("hash-object", "-w", "--no-filters", "--", *paths)
        shas = out.split()
        if len(shas) != len(contents):
            raise WorkspaceError("git hash-object returned the wrong number of objects")
        return shas

    def _commit_tree(self, tree: str, parents: list[str], message: str, author: str) -> str:
        name, email = _parse_author(author)
        env = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": COMMITTER[0],
            "GIT_COMMITTER_EMAIL": COMMITTER[1],
        }
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        args += ["-m", message or "(no message)"]
        sha = self._git(*args, env=env)
        if not _SHA.match(sha):
            raise WorkspaceError(f"git commit-tree returned {sha!r}")
        return sha

    def _sync_worktree(self, old: str, new: str) -> None:
        """Move the checked-out files from `old` to `new` if the run branch is checked out."""
        if self.repo.bare:
            return
        try:
            checked_out = self.repo.active_branch.name == self.branch
        except TypeError:  # detached HEAD
            checked_out = False
        if checked_out:
            try:
                self.repo.git.execute(["git", "read-tree", "-m", "-u", old, new])
            except git.GitCommandError as e:
                raise WorkspaceError(
                    f"the working tree at {self.path} has local changes in the way: "
                    f"{e.stderr.strip()}"
                ) from e


def _check_id(value: str, what: str) -> None:
    if not _ID.match(value) or ".." in value or value.endswith(".lock"):
        raise WorkspaceError(f"invalid {what} {value!r}: use letters, digits, '.', '_', '-'")


def _relpath(name: str) -> str:
    try:
        return safe_relpath(name)
    except ArchiveError as e:
        raise WorkspaceError(str(e)) from e


def _parse_author(author: str) -> tuple[str, str]:
    m = _AUTHOR.match(author)
    if m:
        return m.group("name"), m.group("email")
    name = author.strip() or "agent"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower() or "agent"
    return name, f"{slug}@coimprove.invalid"
