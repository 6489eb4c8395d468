"""`coimprove review`: the Textual app where people decide gates.

Keys: ``a`` approve (asks first on high/critical risk), ``r`` reject, ``c`` request changes,
``e`` edit the payload, ``u`` escalate, Enter/``d`` open the detail, ``/`` filter, ``o`` sort,
``m`` only the gates you may decide, ``s`` stats, ``f`` feedback log, ``t`` light/dark theme,
``q`` quit. Enter never approves.

After each decision (and as the ledger grows) the reviewer is shown what became of their
decisions — canary reveals, outcomes of approvals, how quorum peers decided — and what was
shown is recorded (``feedback.shown``); ``feedback=False`` shows and records nothing. With
``training=True`` only practice gates are shown (`coimprove.tui.training`).
"""

from coimprove.tui.app import ReviewApp, run_review

__all__ = ["ReviewApp", "run_review"]
