"""The workflow the crash tests kill: two agent -> gate -> effect pairs.

Each effect appends one line per real execution to ``$COIMPROVE_TEST_EFFECTS``; with
``COIMPROVE_TEST_CRASH=in_effect`` the process SIGKILLs itself right after that write, the
worst moment: the side effect happened but the ledger never heard it finished.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from coimprove import END, START, Approved, GatedState, Proposal, Workflow


class CrashState(GatedState, total=False):
    done: list[str]


def _propose(state: dict[str, Any], ctx: Any) -> Proposal:
    return Proposal(
        kind="code",
        title=f"{ctx.name} change",
        author=f"agent:{ctx.name}",
        payload={"agent": ctx.name},
    )


def _effect(state: dict[str, Any], approved: Approved) -> dict[str, Any]:
    path = Path(os.environ["COIMPROVE_TEST_EFFECTS"])
    with path.open("a") as f:
        f.write(f"{approved.key} attempt={approved.attempt}\n")
        f.flush()
        os.fsync(f.fileno())
    if os.environ.get("COIMPROVE_TEST_CRASH") == "in_effect":
        os.kill(os.getpid(), signal.SIGKILL)
    return {"done": [*state.get("done", []), approved.key]}


def build(idempotent: bool = False) -> Workflow:
    wf = Workflow("crashy", state=CrashState)
    prev = START
    for i in range(2):
        wf.agent(f"a{i}", _propose, kind="code")
        wf.gate(f"g{i}", proposal_from=f"a{i}", on_approve=f"e{i}")
        wf.effect(f"e{i}", _effect, gate=f"g{i}", idempotent=idempotent)
        wf.edge(prev, f"a{i}")
        wf.edge(f"a{i}", f"g{i}")
        prev = f"e{i}"
    wf.edge(prev, END)
    return wf


workflow = build()
idempotent_workflow = build(idempotent=True)
