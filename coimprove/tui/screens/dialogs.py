"""Modal dialogs: confirm a risky approval, write a note, edit a payload, reveal a canary.

None of them approves on Enter: the confirm dialog focuses Cancel and approves only on
``y`` or a click on its Approve button.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import jsonschema
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from coimprove.tui.format import pretty_json


def parse_payload(text: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    """The edited payload, or `ValueError` saying what is wrong (JSON or schema)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} (line {exc.lineno}, col {exc.colno})") from exc
    if not isinstance(value, dict):
        raise ValueError(f"the payload must be a JSON object, not {type(value).__name__}")
    if schema is not None:
        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(payload)"
            raise ValueError(f"does not match the schema at {where}: {exc.message}") from exc
        except jsonschema.SchemaError as exc:
            raise ValueError(f"the gate's payload schema is itself invalid: {exc.message}") from exc
    return value


class _Dialog(ModalScreen[Any]):
    DEFAULT_CSS = """
    _Dialog { align: center middle; }
    _Dialog > Vertical {
        width: 76; max-width: 95%; height: auto; max-height: 95%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    _Dialog .title { text-style: bold; width: 1fr; }
    _Dialog .error { color: $error; height: auto; }
    _Dialog Horizontal { height: auto; align-horizontal: right; }
    _Dialog Button { margin: 0 1; }
    """


class ConfirmDialog(_Dialog):
    """Asks before approving a high- or critical-risk gate. Cancel has the focus."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "cancel", "Cancel"),
        Binding("y", "confirm", "Yes, approve"),
    ]

    def __init__(self, question: str, confirm_label: str = "Approve (y)") -> None:
        super().__init__()
        self.question = question
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, classes="title")
            with Horizontal():
                yield Button("Cancel (n)", id="cancel", variant="primary")
                yield Button(self.confirm_label, id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_confirm(self) -> None:
        self.dismiss(True)


class NoteDialog(_Dialog):
    """A one-line note (required for request changes). Enter submits, Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, *, required: bool, placeholder: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.required = required
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Input(placeholder=self.placeholder, id="note")
            yield Static("", classes="error", id="error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        note = event.value.strip()
        if self.required and not note:
            self.query_one("#error", Static).update("A note is required: say what to change.")
            return
        self.dismiss(note)

    def action_cancel(self) -> None:
        self.dismiss(None)


class EditDialog(_Dialog):
    """Edit the payload as JSON; it is validated against the gate's schema before it is kept."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save edit", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]
    DEFAULT_CSS = """
    EditDialog TextArea { height: 10; }
    """

    def __init__(self, title: str, payload: dict[str, Any], schema: dict[str, Any] | None):
        super().__init__()
        self.title_text = title
        self.payload = payload
        self.schema = schema

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            hint = "validated against the gate's schema" if self.schema else "no schema declared"
            yield Label(f"ctrl+s save · esc cancel · {hint}")
            yield TextArea(pretty_json(self.payload), id="payload", soft_wrap=False)
            yield Static("", classes="error", id="error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Save edit (ctrl+s)", id="save", variant="warning")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)

    def action_save(self) -> None:
        text = self.query_one(TextArea).text
        try:
            payload = parse_payload(text, self.schema)
        except ValueError as exc:
            self.query_one("#error", Static).update(f"Not saved: {exc}")
            return
        if payload == self.payload:
            self.query_one("#error", Static).update("Not saved: the payload is unchanged.")
            return
        self.dismiss(payload)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RevealDialog(_Dialog):
    """After a decision on a planted canary: what the flaw was and whether it was caught.

    A miss is drawn in the error colour with the feedback's explanation and, in training,
    where to look next time (`hint`).
    """

    DEFAULT_CSS = """
    RevealDialog.missed > Vertical { border: thick $error; }
    RevealDialog.missed .title { color: $error; }
    RevealDialog .hint { color: $warning; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,space", "close", "Close")]

    def __init__(
        self,
        mutation: str | None,
        caught: bool,
        *,
        explanation: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(classes="" if caught else "missed")
        self.mutation = mutation
        self.caught = caught
        self.explanation = explanation
        self.hint = hint

    def compose(self) -> ComposeResult:
        verdict = "You caught it." if self.caught else "MISSED: it was not caught."
        title = "This was a planted flaw (a canary)"
        with Vertical():
            yield Label(title if self.caught else f"✗ {title}", classes="title")
            yield Static(f"flaw: {self.mutation or 'unspecified'}\n{verdict}")
            if self.explanation:
                yield Static(self.explanation)
            if self.hint and not self.caught:
                yield Static(f"Where to look: {self.hint}", classes="hint")
            yield Static("It was never executed. The real proposal comes next. (Esc to close)")

    def action_close(self) -> None:
        self.dismiss(None)
