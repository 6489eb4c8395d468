"""`coimprove review`: the Textual app where people decide gates.

Keys: ``a`` approve (asks first on high/critical risk), ``r`` reject, ``c`` request changes,
``e`` edit the payload, ``u`` escalate, Enter/``d`` open the detail, ``/`` filter, ``o`` sort,
``m`` only the gates you may decide, ``s`` stats, ``t`` light/dark theme, ``q`` quit. Enter
never approves.
"""

from coimprove.tui.app import ReviewApp, run_review

__all__ = ["ReviewApp", "run_review"]
