"""Ready-made pieces for code and experiments that run in sandboxes.

- `code_proposal`: an agent's code change becomes a commit on the run's git workspace (pinned by
  a ref per proposal, not merged); the proposal carries the commit SHA and the diff, so the gate
  shows the diff and an approval's digest names exactly that SHA.
- `merge_effect`: merges an approved code proposal into the run's branch.
- `experiment_effect`: runs an approved experiment spec (the proposal's payload) in a fresh
  Docker sandbox with exactly the approved commit's files, and records the result — exit,
  metrics, resource use, result files with digests — in the ledger (``experiment.recorded``).

```python
wf.effect("run", experiment_effect(workspace=ws), gate="experiment_gate", idempotent=True)
```
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from coimprove.effects import Approved, EffectFn
from coimprove.errors import CoimproveError
from coimprove.model import Artifact, Proposal, Risk, new_id
from coimprove.sandbox.experiment import ExperimentResult, ExperimentSpec, run_experiment
from coimprove.sandbox.protocol import SandboxLimits
from coimprove.sandbox.workspace import GitWorkspace
from coimprove.state import run_context

WorkspaceRef = GitWorkspace | Callable[[Any], GitWorkspace]


def _workspace(ref: WorkspaceRef | None, state: Any) -> GitWorkspace | None:
    if ref is None or isinstance(ref, GitWorkspace):
        return ref
    return ref(state)


def code_proposal(
    workspace: GitWorkspace,
    *,
    title: str,
    author: str,
    files: Mapping[str, str | bytes] | None = None,
    patch: str | None = None,
    body: str = "",
    risk: Risk = "medium",
    tags: Sequence[str] = (),
    payload: dict[str, Any] | None = None,
    kind: str = "code",
) -> Proposal:
    """Commit a code change for review and return the `Proposal` a gate will show."""
    proposal_id = new_id("p-")
    encoded = (
        None
        if files is None
        else {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
    )
    sha = workspace.propose_commit(
        message=title, author=author, files=encoded, patch=patch, proposal_id=proposal_id
    )
    diff = workspace.diff(sha)
    return Proposal(
        id=proposal_id,
        kind=kind,
        title=title,
        body=body,
        payload=payload or {},
        artifacts=(Artifact.from_text("changes.diff", diff, "text/x-diff"),),
        author=author,
        risk=risk,
        tags=tuple(tags),
        commit=sha,
    )


def merge_effect(workspace: WorkspaceRef, *, result_key: str = "merged") -> EffectFn:
    """An effect that merges the approved commit into the run's branch."""

    async def merge(state: Any, approved: Approved) -> dict[str, Any]:
        ws = _workspace(workspace, state)
        commit = approved.proposal.commit
        if ws is None or commit is None:
            raise CoimproveError(f"merge effect at {approved.gate_id!r}: no workspace or commit")
        reviewers = ",".join(approved.outcome.reviewers) or "coimprove"
        head = await asyncio.to_thread(ws.merge, commit, approver=reviewers)
        return {result_key: {"commit": commit, "head": head, "gate": approved.gate_id}}

    return merge


def experiment_effect(
    *,
    image: str = "python",
    workspace: WorkspaceRef | None = None,
    limits: SandboxLimits | None = None,
    result_key: str = "experiment",
) -> EffectFn:
    """An effect that runs the approved `ExperimentSpec` (the proposal's payload) in a sandbox.

    With a workspace and a proposal `commit`, the sandbox gets exactly that commit's files.
    The state update under `result_key` and the ``experiment.recorded`` ledger event hold the
    exit status, metrics, resource use and result artifacts (with digests); `ok` is False and
    `collection_error` says why when the results could not be collected in full.
    """

    async def run(state: Any, approved: Approved) -> dict[str, Any]:
        ctx = run_context()
        try:
            spec = ExperimentSpec.model_validate(approved.proposal.payload)
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise CoimproveError(
                f"experiment at {approved.gate_id!r}: the approved payload is not a valid "
                f"experiment spec ({fields})"
            ) from exc
        result: ExperimentResult = await run_experiment(
            spec,
            image=image,
            workspace=_workspace(workspace, state),
            commit=approved.proposal.commit,
            limits=limits,
            run_id=ctx.run_id,
        )
        summary = {
            "gate": approved.gate_id,
            "key": approved.key,
            "commit": result.commit,
            "inputs_digest": result.inputs_digest,
            "ok": result.ok,
            "exit_code": result.exit_code,
            "ended_by": result.ended_by,
            "collection_error": result.collection_error,
            "wall_s": round(result.wall_s, 3),
            "setup_s": round(result.setup_s, 3),
            "metrics": result.metrics,
            "metrics_error": result.metrics_error,
            "resources": result.resources.model_dump(mode="json"),
            "artifacts": [a.model_dump(mode="json", exclude={"content"}) for a in result.artifacts],
            "rejected": result.rejected,
            "stdout_tail": result.stdout[-2000:],
            "stderr_tail": result.stderr[-2000:],
        }
        ctx.ledger.append(
            "experiment.recorded",
            at=ctx.clock.now(),
            run_id=ctx.run_id,
            gate_id=approved.gate_id,
            data=summary,
        )
        return {result_key: summary}

    return run
