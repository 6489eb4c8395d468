"""Errors of the agents layer (all `CoimproveError`s)."""

from __future__ import annotations

from coimprove.errors import CoimproveError


class ModelError(CoimproveError):
    """A chat model could not be resolved, loaded or called."""


class ModelSpecError(ModelError):
    """A model spec string is malformed or names nothing that can be resolved."""


class MissingExtraError(ModelError):
    """The spec needs an optional dependency that is not installed; the message says what to
    ``pip install``."""


class AgentOutputError(ModelError):
    """A model's output still failed validation after every allowed retry.

    Carries the agent, the model and the last invalid output, so the failure can be read
    without a traceback.
    """

    def __init__(
        self, *, agent: str, model: str, attempts: int, last_output: str, last_error: str
    ) -> None:
        self.agent, self.model, self.attempts = agent, model, attempts
        self.last_output, self.last_error = last_output, last_error
        shown = last_output if len(last_output) <= 2000 else last_output[:2000] + " …"
        super().__init__(
            f"agent {agent!r}: model {model!r} gave no valid output in {attempts} attempt(s); "
            f"last error: {last_error}; last output: {shown!r}"
        )
