"""research_cycle: the co-improvement loop, one human gate per collaboration category.

    coimprove run research_cycle --input '{"model": "local"}' --reviewer careful

Six agents, six gates, three effects (written with coimprove's public API only):

=====================  ==================  =====================  ==========================
agent (proposes)       gate                category (agenda)      on approval
=====================  ==================  =====================  ==========================
identify  (idea)       idea_gate           problem_identification method
method    (code)       code_gate           method_innovation      merge_code: merge the commit
design    (experiment) experiment_gate     experiment_design      run: the approved commit in
                                                                  the ``python`` sandbox
analyse   (analysis)   results_gate        execution              diagnose
diagnose  (error_an.)  conclusion_gate     error_analysis         write
write     (writeup)    writeup_gate        scientific_communic.   publish: merge REPORT.md
=====================  ==================  =====================  ==========================

The research problem ships with the graph: a generated two-rings dataset (``data.py``) on which
the baseline, logistic regression on raw coordinates (``train.py``), stays near chance. The
method agent picks a model and features; the graph renders them into ``train.py``'s METHOD
block and commits it to the run's git workspace, so the code gate shows a real diff and an
approval names its SHA. The design agent picks the learning rate, epochs and seed; the
experiment effect runs exactly the approved commit with those settings in a Docker sandbox and
records real metrics (accuracy, log-loss, loss curve, where the errors are) in the ledger.
Request changes sends a proposal back to its agent with the note; reject ends the run. An
edited experiment spec runs as edited (the approval names the edited digest); code and the
write-up are commits, so change them by requesting changes (an edited payload would not change
the commit that is merged).

Small models propose odd things (a learning rate of 1000, 0 epochs, an MLP with no hidden
units). Nothing here clamps or crashes on them: every value is checked against the range
where it makes sense, and what falls outside is shown to the reviewer as a warning at the top
of the proposal, raises its risk to ``high`` and labels it ``flawed`` (the hidden ground truth
scripted reviewers use in headless studies). Approved anyway, it runs, and the metrics say
what happened. The analysis and write-up gates show the measured numbers beside the model's
claims, and an analysis that calls a failed run "as expected" is flagged too. A method that
stays linear in the raw coordinates is labelled a ``dead_end`` but not flagged: noticing it is
the reviewer's job, and the report's dead-end detection measures whether they did.

Run inputs (all optional): ``topic`` (the team's goal), ``model`` (a model spec: ``local``,
the default, SmolLM2 in-process; ``fake``, this graph's deterministic scripted model;
``provider:model``), ``workspace_root`` (where each run's git workspace is created, default
``.coimprove/workspaces``). The default policy is ``default``; the graph also runs under
``strict`` (two reviewers for code and experiments) and ``canary`` (pass `canaries`, a
`coimprove.CanarySource` of planted-flaw experiments, to the Runner or `run_headless`).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import BaseMessage
from pydantic import Field, create_model

from coimprove import END, START, AgentContext, GatedState, Proposal, Workflow
from coimprove.agents import (
    AgentRole,
    ErrorAnalysisAgent,
    ExecutionAnalysisAgent,
    FakeChatModel,
    IdeaAgent,
    RetryPolicy,
    RoleOutput,
    WriteupAgent,
    resolve_model,
)
from coimprove.agents.local import LocalChatModel
from coimprove.agents.roles import (
    CodePayload,
    ErrorAnalysisPayload,
    ExecutionAnalysisOutput,
    ExecutionAnalysisPayload,
    ExperimentPayload,
    IdeaPayload,
    WriteupOutput,
    WriteupPayload,
    disclose_fallback,
)
from coimprove.canaries import Canaries, CodeCanaries
from coimprove.experiments import code_proposal, experiment_effect, merge_effect
from coimprove.sandbox import GitWorkspace

ASSETS = Path(__file__).resolve().parent / "assets" / "research_cycle"
DEFAULT_TOPIC = (
    "Our classifier for a 2-D dataset of two noisy concentric rings barely beats chance. "
    "Find out why and fix it with the smallest change that works."
)
DEFAULT_WORKSPACES = Path(".coimprove") / "workspaces"
COMMAND = "python3 train.py"
TIMEOUT_S = 60.0
RETRY = RetryPolicy(max_attempts=3, backoff_initial_s=0.5)
LOCAL_MAX_STRING = 160
"""Longest free-text field the local model may write here (its decoding grammar's bound)."""

CATEGORIES: dict[str, str] = {
    "idea_gate": "problem_identification",
    "code_gate": "method_innovation",
    "experiment_gate": "experiment_design",
    "results_gate": "execution",
    "conclusion_gate": "error_analysis",
    "writeup_gate": "scientific_communication",
}
"""Each gate's collaboration category (Weston & Foerster, Table 1), recorded on its events."""


class CycleState(GatedState, total=False):
    topic: str
    model: str
    seed: int
    workspace_root: str
    workspace: dict[str, str]
    methods_sent_back: list[str]
    """Methods a reviewer sent back in this run, oldest first (offered last on a revision)."""
    merged_code: dict[str, Any]
    experiment: dict[str, Any]
    published: dict[str, Any]


# -- the workspace ----------------------------------------------------------------------------


def baseline_files() -> dict[str, str]:
    """The run workspace's first commit: data generator, baseline trainer, README."""
    return {name: (ASSETS / name).read_text(encoding="utf-8") for name in _BASELINE}


_BASELINE = ("README.md", "data.py", "train.py")


def ensure_workspace(state: Mapping[str, Any], run_id: str) -> dict[str, str]:
    """The run's git workspace (created with the baseline on first use), as state data."""
    info = state.get("workspace")
    if info:
        return dict(info)
    root = Path(state.get("workspace_root") or DEFAULT_WORKSPACES).resolve()
    path = root / run_id
    if path.exists() and any(path.iterdir()):  # a replayed step: it is already there
        GitWorkspace.open(path, run_id=run_id)
    else:
        files = {k: v.encode() for k, v in baseline_files().items()}
        GitWorkspace.create(
            path, run_id=run_id, files=files, message="Baseline: logistic regression on rings"
        )
    return {"path": str(path), "run_id": run_id}


_OPENED: deque[GitWorkspace] = deque(maxlen=16)
"""The workspaces opened last, kept alive: `GitWorkspace.holding` (how the code canaries find
the repository of a method commit, to plant a sibling commit in it) sees only live ones."""


def workspace(state: Mapping[str, Any]) -> GitWorkspace:
    """The run's workspace, opened from the state."""
    info = state.get("workspace")
    if not info:
        raise RuntimeError("research_cycle: the run has no workspace yet (no method proposed)")
    ws = GitWorkspace.open(info["path"], run_id=info["run_id"])
    _OPENED.append(ws)
    return ws


# -- checks on proposed values: warnings for the reviewer, never clamps ------------------------


def _fmt(value: float) -> str:
    return f"{value:g}" if math.isfinite(value) else str(value)


def method_warnings(model: str, hidden_units: int, l2: float) -> list[str]:
    """What is implausible about a method choice (empty when it looks sound)."""
    out = []
    if model == "mlp" and hidden_units < 2:
        out.append(
            f"an MLP with {hidden_units} hidden units is not an MLP (train.py falls back "
            "to logistic regression)"
        )
    if model == "mlp" and hidden_units > 256:
        out.append(
            f"{hidden_units} hidden units is far more than 800 points of 2-D data need "
            "(slow, prone to overfitting)"
        )
    if not math.isfinite(l2) or l2 < 0:
        out.append(f"L2 penalty {_fmt(l2)} is negative or not finite: it rewards large weights")
    elif l2 > 0.1:
        out.append(f"L2 penalty {_fmt(l2)} is so strong that the model will underfit")
    return out


def design_warnings(lr: float, epochs: int, seed: int) -> list[str]:
    """What is implausible about training settings (empty when they look sound)."""
    out = []
    if not math.isfinite(lr) or lr <= 0:
        out.append(f"learning rate {_fmt(lr)} is not positive: gradient descent will not learn")
    elif lr > 2:
        out.append(
            f"learning rate {_fmt(lr)} is far above the stable range (0.001 to 2) for "
            "standardised inputs: training will almost surely diverge"
        )
    elif lr < 1e-3:
        out.append(
            f"learning rate {_fmt(lr)} is so small that {epochs} epochs will barely "
            "move the weights"
        )
    if epochs < 10:
        out.append(f"{epochs} epochs is too few to train anything")
    elif epochs > 50_000:
        out.append(f"{epochs} epochs will likely run into the {TIMEOUT_S:g} s sandbox timeout")
    if seed < 0:
        out.append(f"seed {seed} is negative: train.py refuses it")
    return out


def _flag(proposal: Proposal, warnings: list[str]) -> Proposal:
    """Warnings go on top of the body, risk becomes high, and the hidden truth is 'flawed'."""
    if not warnings:
        return proposal
    note = "**Check before approving:**\n" + "\n".join(f"- ⚠ {w}" for w in warnings)
    return proposal.model_copy(
        update={
            "body": note + "\n\n" + proposal.body,
            "risk": "high",
            "tags": (*proposal.tags, "implausible-values"),
            "truth": "flawed",
        }
    )


# -- the method stage: a choice rendered into train.py and committed ---------------------------


METHODS: dict[str, tuple[str, str]] = {
    "straight_line": ("logistic", "raw"),
    "circle": ("logistic", "quadratic"),
    "curved_mlp": ("mlp", "raw"),
}
"""The methods train.py offers, as (MODEL, FEATURES) of its METHOD block."""
METHOD_DESCRIPTIONS: dict[str, str] = {
    "straight_line": "logistic regression on raw x, y (the baseline itself)",
    "circle": "logistic regression on x, y, x², y² and x·y (quadratic features)",
    "curved_mlp": "a network with one tanh hidden layer on raw x, y (choose its hidden units)",
}
HIDDEN_UNIT_CHOICES = (4, 8, 16, 32)
L2_CHOICES = (0.0, 0.0001, 0.001, 0.01)


class MethodOutput(RoleOutput):
    rationale: str = Field(
        min_length=3, max_length=600, description="why this method should fit the data"
    )
    method: Literal["straight_line", "circle", "curved_mlp"] = Field(
        description="; ".join(f"{k}: {v}" for k, v in METHOD_DESCRIPTIONS.items())
    )
    hidden_units: int = Field(
        description="hidden units of the MLP (ignored by straight_line and circle)",
        json_schema_extra={"enum": list(HIDDEN_UNIT_CHOICES)},
    )
    l2: float = Field(
        description="L2 weight penalty (0 for none)", json_schema_extra={"enum": list(L2_CHOICES)}
    )


def method_order(seed: int, last: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The order the method options are offered in, shuffled by the run's seed: SmolLM2-135M
    mostly takes the first option listed, so a fixed order would decide for it. Methods in
    `last` (those a reviewer sent back) come after the others: offered first again, a small
    model would propose the method it was just asked to change."""
    order = list(METHODS)
    random.Random(f"research_cycle.method_order:{seed}").shuffle(order)
    return tuple(sorted(order, key=lambda m: m in last))


_CHOSEN = re.compile(r"\bmethod=(\w+)")


def chosen_method(proposal: Proposal) -> str | None:
    """The method a method proposal chose (from its payload summary), or None."""
    found = _CHOSEN.search(str(proposal.payload.get("summary", "")))
    return found.group(1) if found and found.group(1) in METHODS else None


@lru_cache(maxsize=8)
def method_output(order: tuple[str, ...]) -> type[MethodOutput]:
    """`MethodOutput` with the method options (schema enum and description) in `order`."""
    described = "; ".join(f"{m}: {METHOD_DESCRIPTIONS[m]}" for m in order)
    field: Any = Field(description=described)
    model: type[MethodOutput] = create_model(
        "MethodOutput",
        __base__=MethodOutput,
        method=(Literal[order], field),  # type: ignore[arg-type]
    )
    return model


def method_options(order: tuple[str, ...]) -> str:
    """The options as the method prompt lists them, in `order`."""
    lines = [f"- {m}: {METHOD_DESCRIPTIONS[m]}" for m in order]
    return "train.py offers three methods, named by the boundary they can draw:\n" + "\n".join(
        lines
    )


_METHOD_LINE = re.compile(r"^(MODEL|HIDDEN_UNITS|L2|FEATURES) = .*$", re.MULTILINE)


def render_train(model: str, hidden_units: int, l2: float, features: str) -> str:
    """train.py with its METHOD block set to these values (everything else unchanged)."""
    values = {
        "MODEL": json.dumps(model),
        "HIDDEN_UNITS": str(hidden_units),
        "L2": repr(float(l2)),
        "FEATURES": json.dumps(features),
    }
    template = (ASSETS / "train.py").read_text(encoding="utf-8")
    return _METHOD_LINE.sub(lambda m: f"{m.group(1)} = {values[m.group(1)]}", template)


class MethodAgent(AgentRole[MethodOutput]):
    """Method innovation: a model/feature choice, committed as a change to train.py."""

    kind = "code"
    prompt_name = str(ASSETS / "method.md")
    output_model = MethodOutput
    payload_model = CodePayload
    category = "method_innovation"
    default_risk = "medium"

    def __init__(
        self, model: Any = None, *, seed: int = 0, sent_back: tuple[str, ...] = (), **kw: Any
    ) -> None:
        order = method_order(seed, sent_back)
        kw["instructions"] = method_options(order) + "\n\n" + kw.get("instructions", "")
        super().__init__(model, **kw)
        self.output_model = method_output(order)
        self.sent_back = tuple(m for m in order if m in sent_back)

    def fallback_title(self, output: MethodOutput, state: Mapping[str, Any]) -> str:
        return f"Method: {method_label(output.method, output.hidden_units, output.l2)}"

    def brief(self, proposal: Proposal) -> str:
        """The sent-back method as its title, settings and rationale (not the diff: the
        choice is what the model can change, and a short prompt keeps a revision fast)."""
        body = re.sub(r"^\*\*Revision of .*?\n\n", "", proposal.body, flags=re.S)
        kept = [p for p in body.split("\n\n") if p.startswith(("**Method.**", "**Rationale.**"))]
        return "\n".join([f"title: {proposal.title}", *kept])

    async def build(self, output: MethodOutput, state: Mapping[str, Any], ctx: Any) -> Proposal:
        model, features = METHODS[output.method]
        hidden = output.hidden_units if model == "mlp" else 0
        settings = (
            f"method={output.method} (model={model}, features={features}), "
            f"hidden_units={hidden}, l2={_fmt(output.l2)}"
        )
        summary = f"Set train.py's METHOD to {settings}. {output.rationale}"[:1000]
        body = (
            f"**Method.** {settings}\n\n**Rationale.** {output.rationale}\n\n"
            f"The diff changes only train.py's METHOD block. Check: `{COMMAND}`"
        )
        if self.sent_back:
            body += (
                "\n\n(revision: the options were offered with the method(s) sent back, "
                f"{', '.join(self.sent_back)}, listed last)"
            )
        if model == "logistic" and output.hidden_units:
            body += (
                f"\n\n(hidden_units={output.hidden_units} ignored: {output.method} has no "
                "hidden layer)"
            )
        proposal = code_proposal(
            workspace(state),
            title=output.title,
            author=f"agent:{ctx.name}",
            files={"train.py": render_train(model, hidden, output.l2, features)},
            body=body,
            risk=self.risk,
            payload=CodePayload(
                summary=summary, paths=["train.py"], test_command=COMMAND
            ).model_dump(mode="json"),
        )
        flagged = _flag(proposal, method_warnings(model, hidden, output.l2))
        if flagged.truth is None and is_dead_end(model, hidden, features):
            flagged = flagged.model_copy(update={"truth": "dead_end"})
        return flagged


def method_label(method: str, hidden_units: int, l2: float) -> str:
    """A method in a few words, e.g. ``MLP, 16 hidden units, L2 0.0001``."""
    name = {
        "straight_line": "logistic regression (straight line)",
        "circle": "quadratic features (circle)",
        "curved_mlp": "MLP",
    }
    label = name.get(method, method)
    if method == "curved_mlp":
        label += f", {hidden_units} hidden units"
    return label + (f", L2 {_fmt(l2)}" if l2 else "")


def is_dead_end(model: str, hidden_units: int, features: str) -> bool:
    """Whether a method is still a straight line in the raw coordinates: it cannot separate a
    disk from the ring around it, whatever the training (hidden ground truth, not a warning:
    seeing it is the reviewer's job, and `coimprove report` measures dead-end detection)."""
    linear = model == "logistic" or hidden_units < 2
    return linear and features == "raw"


# -- the design stage: hyperparameters as an experiment spec on the approved commit -----------


LEARNING_RATE_CHOICES = (0.1, 0.3, 1.0)
EPOCH_CHOICES = (500, 1000, 2000)
EXPECTED_ACCURACY_CHOICES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


class DesignOutput(RoleOutput):
    """Training settings. The choices (the range where full-batch gradient descent on
    standardised inputs trains these models) are offered to constrained decoding as the
    schema's ``enum``; validation stays open, so a model without a grammar can still propose a
    value outside them, which the gate then flags (and canaries plant such values)."""

    learning_rate: float = Field(
        description="gradient descent step size",
        json_schema_extra={"enum": list(LEARNING_RATE_CHOICES)},
    )
    epochs: int = Field(
        description="full passes over the training data",
        json_schema_extra={"enum": list(EPOCH_CHOICES)},
    )
    expected_accuracy: float = Field(
        description="held-out accuracy you expect",
        json_schema_extra={"enum": list(EXPECTED_ACCURACY_CHOICES)},
    )
    hypothesis: str = Field(min_length=3, max_length=400, description="what the run tests")


def design_payload(lr: float, epochs: int, seed: int, expected: float) -> dict[str, Any]:
    """The experiment spec (an `ExperimentPayload`, which `ExperimentSpec` accepts)."""
    return ExperimentPayload(
        command=COMMAND,
        env={"LEARNING_RATE": repr(float(lr)), "EPOCHS": str(epochs), "SEED": str(seed)},
        timeout_s=TIMEOUT_S,
        expected_outcome=f"held-out accuracy about {_fmt(expected)}",
    ).model_dump(mode="json")


def design_body(hypothesis: str, env: Mapping[str, str], expected_outcome: str) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in env.items())
    return (
        f"**Hypothesis.** {hypothesis}\n\n**Run.** `{COMMAND}` with {settings} on the "
        f"approved commit, in the `python` sandbox (no network, {TIMEOUT_S:g} s timeout).\n\n"
        f"**Expected.** {expected_outcome}"
    )


def _env_warnings(env: Mapping[str, str]) -> list[str]:
    try:
        lr, epochs, seed = float(env["LEARNING_RATE"]), int(env["EPOCHS"]), int(env["SEED"])
    except (KeyError, ValueError) as exc:
        return [f"the settings cannot be read by train.py: {exc}"]
    return design_warnings(lr, epochs, seed)


class DesignAgent(AgentRole[DesignOutput]):
    """Joint experiment design: training settings for the approved commit (kind experiment)."""

    kind = "experiment"
    prompt_name = str(ASSETS / "design.md")
    output_model = DesignOutput
    payload_model = ExperimentPayload
    category = "experiment_design"
    default_risk = "medium"

    async def build(self, output: DesignOutput, state: Mapping[str, Any], ctx: Any) -> Proposal:
        payload = design_payload(
            output.learning_rate, output.epochs, run_seed(state), output.expected_accuracy
        )
        warnings = _env_warnings(payload["env"])
        if not 0 <= output.expected_accuracy <= 1:
            warnings.append(f"expected accuracy {_fmt(output.expected_accuracy)} is not in [0, 1]")
        proposal = Proposal(
            kind=self.kind,
            title=output.title,
            body=design_body(output.hypothesis, payload["env"], payload["expected_outcome"]),
            payload=payload,
            author=f"agent:{ctx.name}",
            risk=self.risk,
            commit=workspace(state).head,  # the merged, approved code: exactly what will run
        )
        return _flag(proposal, warnings)


class PlantedFlaws:
    """A `CanarySource` for this graph, one flaw a careful reviewer should stop at every gate:

    - idea: a direction that cannot work on the rings (the straight line trained longer or
      regularised harder) or that reports a number selected on the held-out points;
    - code: the method commit with a network call added to ``train.py`` (coimprove's
      `CodeCanaries`: a real commit beside the agent's, never merged);
    - experiment: a learning rate or epoch count outside the range where training works;
    - analysis, error analysis, write-up: a claim of held-out accuracy the sandbox did not
      measure.

    Each is built like a real proposal of its agent (same body layout; the experiment and the
    misreport carry the warnings a real one would). Every gate can show one, so a run a
    reviewer ends early still measures that reviewer's vigilance on the gates it did see.
    """

    IDEAS: tuple[tuple[str, str, str, str], ...] = (
        (
            "dead-end-idea",
            "Train the straight-line baseline longer",
            "The baseline has not converged yet: keep logistic regression on the raw x, y "
            "coordinates and train it ten times longer with a larger learning rate.",
            "Rerun train.py's baseline with ten times the epochs and compare held-out accuracy.",
        ),
        (
            "dead-end-idea",
            "Regularise the straight line against label noise",
            "The 5% flipped labels make the baseline overfit: add a strong L2 penalty to "
            "logistic regression on the raw x, y coordinates so it ignores the noisy points.",
            "Train the baseline with L2 0.01 and compare held-out accuracy.",
        ),
        (
            "held-out-selection",
            "Report the best method found on the held-out points",
            "Train every method train.py offers with every hidden-unit count and L2 penalty, "
            "and report the best held-out accuracy among them as the method's accuracy.",
            "Loop over all settings and keep the one with the highest held-out accuracy.",
        ),
    )
    """(mutation, title, idea, first step): a dead end, or a result selected on the test set."""

    FLAWS: tuple[tuple[str, str, str], ...] = (
        ("lr-x1000", "LEARNING_RATE", "1000.0"),
        ("negative-lr", "LEARNING_RATE", "-0.5"),
        ("no-epochs", "EPOCHS", "1"),
    )
    MISREPORTED = 0.99
    """The held-out accuracy a misreporting canary claims (above the 95% noise ceiling)."""

    def __init__(self) -> None:
        self._code = Canaries([CodeCanaries()], only=("network_call",))

    def mutate(self, proposal: Proposal, rng: random.Random) -> tuple[Proposal, str] | None:
        if proposal.kind in ("analysis", "error_analysis", "writeup"):
            return self._misreport(proposal)
        if proposal.kind == "idea":
            return self._bad_idea(proposal, rng)
        if proposal.kind == "code":
            return self._code.mutate(proposal, rng)
        if proposal.kind != "experiment" or "env" not in proposal.payload:
            return None
        name, key, value = rng.choice(self.FLAWS)
        payload = {**proposal.payload, "env": {**proposal.payload["env"], key: value}}
        hypothesis = re.search(r"\*\*Hypothesis\.\*\* (.*?)\n\n", proposal.body, re.DOTALL)
        body = design_body(
            hypothesis.group(1) if hypothesis else proposal.title,
            payload["env"],
            payload.get("expected_outcome", ""),
        )
        base = proposal.model_copy(
            update={"payload": payload, "body": body, "risk": "medium", "truth": None}
        )
        tags = tuple(t for t in base.tags if t != "implausible-values")
        return _flag(base.model_copy(update={"tags": tags}), _env_warnings(payload["env"])), name

    def _bad_idea(self, proposal: Proposal, rng: random.Random) -> tuple[Proposal, str] | None:
        if not re.search(r"^\*\*Idea\.\*\* ", proposal.body, re.MULTILINE):
            return None
        name, title, idea, first_step = rng.choice(self.IDEAS)
        if idea == proposal.payload.get("idea"):
            return None
        body = _replace_paragraph(proposal.body, "Idea", idea)
        body = (
            _replace_paragraph(body, "First step", first_step)
            if re.search(r"^\*\*First step\.\*\* ", body, re.MULTILINE)
            else body + f"\n\n**First step.** {first_step}"
        )
        payload = {**proposal.payload, "idea": idea, "first_step": first_step}
        update = {"title": title, "payload": payload, "body": body, "truth": None}
        return proposal.model_copy(update=update), name

    def _misreport(self, proposal: Proposal) -> tuple[Proposal, str] | None:
        measured_acc = re.search(r"held-out accuracy ([0-9.]+), train", proposal.body)
        if measured_acc is None:  # nothing measured to misreport
            return None
        claim = f"The method reached held-out accuracy {self.MISREPORTED}, well above the baseline."
        field = {"analysis": "summary", "error_analysis": "summary", "writeup": "abstract"}
        key = field[proposal.kind]
        payload = {**proposal.payload, key: claim}
        if proposal.kind == "analysis":
            payload["outcome"] = "as_expected"
        body = proposal.body.replace("**Measured**", f"**Claim.** {claim}\n\n**Measured**", 1)
        warning = (
            f"the text claims held-out accuracy {self.MISREPORTED}, but the sandbox measured "
            f"{measured_acc.group(1)}"
        )
        base = proposal.model_copy(update={"payload": payload, "body": body, "truth": None})
        return _flag(base, [warning]), "misreported-accuracy"


def _replace_paragraph(body: str, label: str, text: str) -> str:
    """`body` with its ``**<label>.** …`` paragraph saying `text` instead."""
    pattern = re.compile(rf"^\*\*{re.escape(label)}\.\*\* .*?(?=\n\n|\Z)", re.M | re.S)
    return pattern.sub(lambda _: f"**{label}.** {text}", body, count=1)


canaries = PlantedFlaws()


# -- analysis, error analysis and write-up: the model's words beside the measured numbers -----


def _result(state: Mapping[str, Any]) -> dict[str, Any]:
    return dict(state.get("experiment") or {})


def measured(state: Mapping[str, Any]) -> dict[str, Any]:
    """What the sandbox run measured (without the loss curve), for prompts and reports."""
    result = _result(state)
    metrics = dict(result.get("metrics") or {})
    curve = metrics.pop("loss_curve", None)
    if isinstance(curve, list) and curve:
        metrics["loss_first_last"] = [curve[0], curve[-1]]
    return {
        "exit_code": result.get("exit_code"),
        "ended_by": result.get("ended_by"),
        "metrics": metrics,
        "metrics_error": result.get("metrics_error"),
        "stderr_tail": (result.get("stderr_tail") or "")[-400:],
    }


def run_failed(state: Mapping[str, Any]) -> str | None:
    """Why the experiment did not give usable results, or None if it did."""
    m = measured(state)
    if m["ended_by"] != "exit" or m["exit_code"] != 0:
        return f"the run ended by {m['ended_by']} with exit code {m['exit_code']}"
    if not m["metrics"] or "error" in m["metrics"]:
        return f"no metrics: {m['metrics'].get('error') or m['metrics_error']}"
    if m["metrics"].get("diverged"):
        return "training diverged (weights became infinite or NaN)"
    return None


def measured_line(state: Mapping[str, Any]) -> str:
    m = measured(state)
    metrics = m["metrics"]
    if "held_out_accuracy" not in metrics:
        return f"**Measured** (sandbox): {run_failed(state) or 'no metrics'}."
    acc = f"held-out accuracy {metrics['held_out_accuracy']:.3f}"
    acc += f", train accuracy {metrics['train_accuracy']:.3f}"
    loss = metrics.get("held_out_loss")
    loss_txt = "not finite" if loss is None else f"{loss:.4f}"
    return (
        f"**Measured** (sandbox, not the model): {acc}, held-out log-loss {loss_txt}, "
        f"diverged: {str(metrics.get('diverged')).lower()}, "
        f"{metrics.get('epochs_run')} of {metrics.get('epochs')} epochs."
    )


def _approved(state: Mapping[str, Any], agent: str) -> dict[str, Any]:
    raw = (state.get("proposals") or {}).get(agent) or {}
    return {"title": raw.get("title"), **(raw.get("payload") or {})}


def _accuracy_text(state: Mapping[str, Any]) -> str:
    acc = measured(state)["metrics"].get("held_out_accuracy")
    return f"held-out accuracy {acc:.3f}" if isinstance(acc, float) else "no held-out accuracy"


class AnalysisAgent(ExecutionAnalysisAgent):
    """Collaborative execution: the model's reading of the run, shown with the real numbers."""

    def fallback_title(self, output: ExecutionAnalysisOutput, state: Mapping[str, Any]) -> str:
        verdict = output.outcome.replace("_", " ")
        if output.outcome == "failed" and run_failed(state) is None:
            verdict = "ran (the model's reading, failed, contradicts the sandbox)"
        return f"Run {verdict}: {_accuracy_text(state)} (measured)"

    async def build(
        self, output: ExecutionAnalysisOutput, state: Mapping[str, Any], ctx: Any
    ) -> Proposal:
        warnings = analysis_warnings(output.outcome, state)
        model_output = output
        if warnings and ctx.feedback is not None:
            # sent back, and still contradicting the sandbox: the outcome and summary come
            # from the measurement (which `analysis_warnings` never flags), and the gate says
            # so; the first reading stays the model's own, so a reviewer's catch of it is measured
            output = output.model_copy(
                update={"outcome": measured_outcome(state), "summary": measured_summary(state)}
            )
        proposal = await super().build(output, state, ctx)
        proposal = proposal.model_copy(
            update={"body": measured_line(state) + "\n\n" + proposal.body}
        )
        if output is model_output:
            return _flag(proposal, warnings)
        for name in ("summary", "outcome"):
            proposal = disclose_fallback(
                proposal,
                name,
                str(getattr(model_output, name)),
                f"still contradicting the sandbox after a reviewer sent it back ({warnings[0]})",
                source="the sandbox's measurement",
            )
        return proposal


EXPECTED_TOLERANCE = 0.15
"""How far held-out accuracy may be from the design's expectation and still be as expected."""


def expected_accuracy(state: Mapping[str, Any]) -> float | None:
    """The held-out accuracy the approved design expected, or None."""
    found = re.search(
        r"about (-?[0-9.eE+-]+)", _approved(state, "design").get("expected_outcome") or ""
    )
    try:
        return float(found.group(1)) if found else None
    except ValueError:
        return None


def measured_outcome(state: Mapping[str, Any]) -> Literal["as_expected", "unexpected", "failed"]:
    """The outcome the sandbox's measurement supports: failed (no usable result), as expected
    (held-out accuracy within `EXPECTED_TOLERANCE` of the design's expectation), else unexpected."""
    if run_failed(state) is not None:
        return "failed"
    acc, target = measured(state)["metrics"].get("held_out_accuracy"), expected_accuracy(state)
    if isinstance(acc, float) and target is not None and abs(acc - target) <= EXPECTED_TOLERANCE:
        return "as_expected"
    return "unexpected"


def measured_summary(state: Mapping[str, Any]) -> str:
    """What the sandbox measured, in one sentence (a fallback summary)."""
    failed = run_failed(state)
    if failed is not None:
        return f"The run gave no usable result: {failed}."
    target = expected_accuracy(state)
    expected = f" ({_fmt(target)} was expected)" if target is not None else ""
    return f"The run exited cleanly and measured {_accuracy_text(state)}{expected}."


def analysis_warnings(outcome: str, state: Mapping[str, Any]) -> list[str]:
    """Where an analysis's verdict contradicts what was measured."""
    failed = run_failed(state)
    if outcome == "failed" and failed is None:
        return [
            f"the analysis calls the run failed, but it exited cleanly and measured "
            f"{_accuracy_text(state)}"
        ]
    if outcome != "as_expected":
        return []
    if failed:
        return [f"the analysis calls the run as expected, but {failed}"]
    acc, target = measured(state)["metrics"].get("held_out_accuracy"), expected_accuracy(state)
    if target is not None and isinstance(acc, float) and abs(acc - target) > EXPECTED_TOLERANCE:
        return [
            f"the analysis calls the run as expected, but it measured held-out accuracy "
            f"{acc:.3f} where {_fmt(target)} was expected"
        ]
    return []


class DiagnosisAgent(ErrorAnalysisAgent):
    """Evaluation and error analysis, with the measured error breakdown beside it."""

    def fallback_title(self, output: Any, state: Mapping[str, Any]) -> str:
        errors = (measured(state)["metrics"].get("errors") or {}).get("held_out_errors")
        where = f"{errors} held-out errors" if isinstance(errors, int) else "errors"
        return f"Where the {where} are: {len(output.failure_modes)} failure mode(s)"

    async def build(self, output: Any, state: Mapping[str, Any], ctx: Any) -> Proposal:
        proposal = await super().build(output, state, ctx)
        errors = measured(state)["metrics"].get("errors")
        table = f"\n\nMeasured held-out errors: `{json.dumps(errors)}`" if errors else ""
        return proposal.model_copy(
            update={"body": measured_line(state) + table + "\n\n" + proposal.body}
        )


def report_markdown(output: WriteupOutput, state: Mapping[str, Any]) -> str:
    """REPORT.md: the model's write-up, then the measured results and their provenance."""
    m = measured(state)
    rows = "\n".join(f"| {k} | {json.dumps(v)} |" for k, v in m["metrics"].items() if k != "errors")
    merged = state.get("merged_code") or {}
    result = _result(state)
    parts = [
        f"# {output.title}",
        f"**Abstract.** {output.abstract}",
        output.text,
        "## Measured results (recorded by the sandbox run, not written by the model)",
        f"Run ended by {m['ended_by']}, exit code {m['exit_code']}.",
        "| metric | value |\n|---|---|\n" + rows if rows else "(no metrics)",
        "## Limitations",
        output.limitations or "(none stated)",
        "## Provenance\n\n"
        f"- code commit (approved at {merged.get('gate')}): {merged.get('commit')}\n"
        f"- experiment (approved at {result.get('gate')}): commit {result.get('commit')}, "
        f"inputs {result.get('inputs_digest')}",
    ]
    return "\n\n".join(parts) + "\n"


class ReportAgent(WriteupAgent):
    """Scientific communication: the write-up as a commit of REPORT.md (merged on approval)."""

    def fallback_title(self, output: WriteupOutput, state: Mapping[str, Any]) -> str:
        metrics = measured(state)["metrics"]
        method = metrics.get("model"), metrics.get("features")
        label = {v: k for k, v in METHODS.items()}.get(method, str(metrics.get("model")))
        hidden = int(metrics.get("hidden_units") or 0)
        return f"Report: {method_label(label, hidden, 0.0)}, {_accuracy_text(state)}"[:120]

    async def build(self, output: WriteupOutput, state: Mapping[str, Any], ctx: Any) -> Proposal:
        base = await super().build(output, state, ctx)
        return code_proposal(
            workspace(state),
            title=output.title,
            author=f"agent:{ctx.name}",
            files={"REPORT.md": report_markdown(output, state)},
            body=measured_line(state) + "\n\n" + base.body,
            risk=self.risk,
            payload=base.payload,
            kind=self.kind,
        )


# -- what each agent sees ---------------------------------------------------------------------

_SETTING = (
    "Data: 400 training and 400 held-out 2-D points; class 0 fills a disk of radius 1, class 1 "
    "a ring between radii 1.3 and 2 around it; 5% of labels are flipped. Baseline: logistic "
    "regression on the raw x, y coordinates (a straight line), which stays near 50% accuracy."
)


def _topic(state: Mapping[str, Any]) -> str:
    return str(state.get("topic") or DEFAULT_TOPIC)


def ctx_identify(state: Mapping[str, Any]) -> dict[str, Any]:
    return {"goal": _topic(state), "setting": _SETTING}


def ctx_method(state: Mapping[str, Any]) -> dict[str, Any]:
    return {"goal": _topic(state), "setting": _SETTING, "idea": _brief(state, "identify", "idea")}


def ctx_design(state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "idea": _brief(state, "identify", "idea"),
        "method": _brief(state, "method", "summary"),
    }


_KEY_METRICS = (
    "model",
    "features",
    "hidden_units",
    "l2",
    "learning_rate",
    "epochs",
    "epochs_run",
    "diverged",
    "train_accuracy",
    "held_out_accuracy",
    "held_out_loss",
)


def key_result(state: Mapping[str, Any], *, errors: bool = False) -> dict[str, Any]:
    """What the later stages' prompts need of the run: how it ended and the headline metrics
    with the baseline's held-out accuracy (and the error breakdown with `errors`). The whole
    record made the write-up prompt ~2,000 tokens, which SmolLM2 on two cores reads in ~10 s."""
    m = measured(state)
    metrics = m["metrics"]
    out: dict[str, Any] = {"exit_code": m["exit_code"], "ended_by": m["ended_by"]}
    picked = {k: metrics[k] for k in _KEY_METRICS if k in metrics}
    baseline = metrics.get("baseline")
    if isinstance(baseline, dict) and "held_out_accuracy" in baseline:
        picked["baseline_held_out_accuracy"] = baseline["held_out_accuracy"]
    if errors and metrics.get("errors"):
        picked["errors"] = metrics["errors"]
    out["metrics"] = picked
    if m["metrics_error"]:
        out["metrics_error"] = m["metrics_error"]
    if m["stderr_tail"] and m["exit_code"] != 0:
        out["stderr_tail"] = m["stderr_tail"][-200:]
    return out


def _brief(state: Mapping[str, Any], agent: str, *fields: str) -> dict[str, Any]:
    approved = _approved(state, agent)
    return {k: approved[k] for k in fields if approved.get(k) not in (None, "", [])}


def ctx_analyse(state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "experiment": _brief(state, "design", "env", "expected_outcome"),
        "result": key_result(state),
    }


def ctx_diagnose(state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "result": key_result(state, errors=True),
        "analysis": _brief(state, "analyse", "outcome", "summary"),
    }


def ctx_write(state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "goal": _topic(state),
        "idea": _brief(state, "identify", "idea"),
        "experiment": _brief(state, "design", "env", "expected_outcome"),
        "result": key_result(state),
        "analysis": _brief(state, "analyse", "outcome", "summary"),
        "error_analysis": _brief(state, "diagnose", "summary"),
    }


# -- the team of agents, one per model spec ---------------------------------------------------


def _stage(name: str) -> str:
    return f"(research_cycle stage: {name}) Be concrete and short."


@dataclass(frozen=True)
class Team:
    identify: IdeaAgent
    method: MethodAgent
    design: DesignAgent
    analyse: AnalysisAgent
    diagnose: DiagnosisAgent
    write: ReportAgent


def kw(stage: str, context: Any) -> dict[str, Any]:
    """What every agent of the team is built with: its context, stage instructions, retry."""
    return {"context": context, "instructions": _stage(stage), "retry": RETRY}


@lru_cache(maxsize=32)
def team(spec: str, seed: int = 0) -> Team:
    """The agents for one model spec (``fake`` is this graph's scripted model) and sampling
    seed (the ``local`` model samples with it; other specs ignore it)."""
    model: str | BaseChatModel = spec
    if spec == "fake":
        model = FakeChatModel(respond=scripted_reply, model_name="fake:research_cycle")
    elif spec == "local":
        # shares the loaded weights with every other one; short strings keep a cycle fast
        model = LocalChatModel(seed=seed, grammar_max_string=LOCAL_MAX_STRING)

    return Team(
        identify=IdeaAgent(model, **kw("identify", ctx_identify)),
        method=MethodAgent(model, seed=seed, **kw("method", ctx_method)),
        design=DesignAgent(model, **kw("design", ctx_design)),
        analyse=AnalysisAgent(model, **kw("analyse", ctx_analyse)),
        diagnose=DiagnosisAgent(model, **kw("diagnose", ctx_diagnose)),
        write=ReportAgent(model, **kw("write", ctx_write)),
    )


def run_seed(state: Mapping[str, Any]) -> int:
    """The run's seed (input ``seed``, default 0): the model's sampling seed and the
    experiment's SEED (initial weights), so runs with different seeds are replicates."""
    seed = state.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"research_cycle: input 'seed' must be a whole number >= 0, got {seed!r}")
    return seed


def model_spec(state: Mapping[str, Any]) -> str:
    return str(state.get("model") or os.environ.get("COIMPROVE_MODEL") or "local")


def _check_spec(spec: str) -> None:
    if spec != "fake":
        resolve_model(spec)  # a bad spec or a missing extra fails here, naming the fix


# -- the workflow -----------------------------------------------------------------------------

workflow = Workflow(
    "research_cycle",
    state=CycleState,
    policy="default",
    description="Problem → method (a commit) → experiment (sandboxed) → analysis → write-up, "
    "with a human gate per collaboration category.",
)


async def identify(state: CycleState, ctx: AgentContext) -> Proposal:
    spec = model_spec(state)
    _check_spec(spec)
    return await team(spec, run_seed(state)).identify(state, ctx)


async def method(state: CycleState, ctx: AgentContext) -> tuple[Proposal, dict[str, Any]]:
    info = ensure_workspace(state, ctx.run_id)
    sent_back = list(state.get("methods_sent_back") or [])
    if ctx.feedback is not None and (m := chosen_method(ctx.feedback.previous)) is not None:
        sent_back = [*(s for s in sent_back if s != m), m]
    agent = method_agent(model_spec(state), run_seed(state), tuple(sent_back))
    proposal = await agent({**state, "workspace": info}, ctx)
    return proposal, {"workspace": info, "methods_sent_back": sent_back}


@lru_cache(maxsize=64)
def method_agent(spec: str, seed: int, sent_back: tuple[str, ...]) -> MethodAgent:
    """The team's method agent, offering the methods a reviewer sent back last."""
    first = team(spec, seed).method
    if not sent_back:
        return first
    return MethodAgent(first.model, seed=seed, sent_back=sent_back, **kw("method", ctx_method))


async def design(state: CycleState, ctx: AgentContext) -> Proposal:
    return await team(model_spec(state), run_seed(state)).design(state, ctx)


async def analyse(state: CycleState, ctx: AgentContext) -> Proposal:
    return await team(model_spec(state), run_seed(state)).analyse(state, ctx)


async def diagnose(state: CycleState, ctx: AgentContext) -> Proposal:
    return await team(model_spec(state), run_seed(state)).diagnose(state, ctx)


async def write(state: CycleState, ctx: AgentContext) -> Proposal:
    return await team(model_spec(state), run_seed(state)).write(state, ctx)


workflow.agent("identify", identify, kind="idea", payload=IdeaPayload)
workflow.agent("method", method, kind="code", payload=CodePayload)
workflow.agent("design", design, kind="experiment", payload=ExperimentPayload)
workflow.agent("analyse", analyse, kind="analysis", payload=ExecutionAnalysisPayload)
workflow.agent("diagnose", diagnose, kind="error_analysis", payload=ErrorAnalysisPayload)
workflow.agent("write", write, kind="writeup", payload=WriteupPayload)

workflow.gate(
    "idea_gate", proposal_from="identify", on_approve="method", category=CATEGORIES["idea_gate"]
)
workflow.gate(
    "code_gate", proposal_from="method", on_approve="merge_code", category=CATEGORIES["code_gate"]
)
workflow.gate(
    "experiment_gate",
    proposal_from="design",
    on_approve="run",
    category=CATEGORIES["experiment_gate"],
)
workflow.gate(
    "results_gate",
    proposal_from="analyse",
    on_approve="diagnose",
    category=CATEGORIES["results_gate"],
)
workflow.gate(
    "conclusion_gate",
    proposal_from="diagnose",
    on_approve="write",
    category=CATEGORIES["conclusion_gate"],
)
workflow.gate(
    "writeup_gate", proposal_from="write", on_approve="publish", category=CATEGORIES["writeup_gate"]
)

# Effects: the only steps with consequences, each behind its gate's approval of a digest.
workflow.effect(
    "merge_code",
    merge_effect(workspace, result_key="merged_code"),
    gate="code_gate",
    idempotent=True,
)
workflow.effect(
    "run",
    experiment_effect(workspace=workspace, result_key="experiment"),
    gate="experiment_gate",
    idempotent=True,
)
workflow.effect(
    "publish", merge_effect(workspace, result_key="published"), gate="writeup_gate", idempotent=True
)

workflow.edge(START, "identify")
for agent, gate in (
    ("identify", "idea_gate"),
    ("method", "code_gate"),
    ("design", "experiment_gate"),
    ("analyse", "results_gate"),
    ("diagnose", "conclusion_gate"),
    ("write", "writeup_gate"),
):
    workflow.edge(agent, gate)
workflow.edge("merge_code", "design")
workflow.edge("run", "analyse")
workflow.edge("publish", END)


# -- the scripted model (model spec "fake"): deterministic, and it reads the real numbers -----


def _context(messages: list[BaseMessage]) -> dict[str, Any]:
    text = str(messages[-1].content)
    block = text.split("## Context\n", 1)[-1].split("\n## ", 1)[0]
    try:
        data = json.loads(block)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def scripted_reply(messages: list[BaseMessage]) -> str:
    """The reply of the ``fake`` model: one canned answer per stage, the analysis stages
    filled in from the measured results in the prompt. Its first experiment design has a
    learning rate of 1000 (the kind of slip a gate is for); after feedback it proposes 0.5."""
    system = str(messages[0].content)
    stage = re.search(r"research_cycle stage: (\w+)", system)
    name = stage.group(1) if stage else ""
    revising = "## Reviewer feedback" in str(messages[-1].content)
    changes = "Addressed the reviewer's note." if revising else ""
    ctx = _context(messages)
    result = ctx.get("result") or {}
    metrics = result.get("metrics") or {}
    acc = metrics.get("held_out_accuracy")
    ok = result.get("exit_code") == 0 and not metrics.get("diverged") and acc is not None
    acc_txt = f"{acc:.3f}" if isinstance(acc, float) else "unavailable"
    replies: dict[str, dict[str, Any]] = {
        "identify": {
            "title": "A linear model cannot separate a disk from a ring",
            "problem": "The baseline draws one straight line; the classes are nested rings.",
            "idea": "Give the model a nonlinear decision boundary: an MLP or quadratic features.",
            "why_it_matters": "It tests whether capacity, not data, limits accuracy.",
            "first_step": "Train a small MLP once and compare held-out accuracy with 0.5.",
        },
        "method": {
            "title": "One-hidden-layer MLP with 16 tanh units",
            "rationale": "A circle-shaped boundary needs a nonlinear model; 16 units suffice.",
            "method": "curved_mlp",
            "hidden_units": 16,
            "l2": 0.001 if revising else 0.0001,
        },
        "design": {
            "title": "Train the MLP with lr 0.5 for 1500 epochs"
            if revising
            else "Train the MLP fast with lr 1000",
            "hypothesis": "The MLP reaches held-out accuracy near the 95% noise ceiling.",
            "learning_rate": 0.5 if revising else 1000,
            "epochs": 1500 if revising else 300,
            "expected_accuracy": 0.9,
        },
        "analyse": {
            "title": f"Held-out accuracy {acc_txt}",
            "outcome": "as_expected" if ok and acc >= 0.85 else "unexpected" if ok else "failed",
            "summary": f"The run ended with exit code {result.get('exit_code')}; held-out "
            f"accuracy {acc_txt}, diverged: {metrics.get('diverged')}.",
            "findings": [f"train accuracy {metrics.get('train_accuracy')}"],
            "next_step": "Repeat with three seeds to measure variance.",
        },
        "diagnose": {
            "title": "Where the held-out errors are",
            "summary": f"Held-out accuracy {acc_txt}; errors by radius: "
            f"{json.dumps((metrics.get('errors') or {}).get('by_radius'))}.",
            "failure_modes": [
                {
                    "name": "boundary points",
                    "evidence": "errors concentrate between radius 0.9 and 1.4",
                    "likely_cause": "radius noise and flipped labels overlap the classes",
                    "fix": "none needed beyond the noise ceiling; report it",
                }
            ],
        },
        "write": {
            "title": f"A 16-unit MLP on the rings: held-out accuracy {acc_txt}",
            "abstract": f"An MLP with 16 hidden units reached held-out accuracy {acc_txt} "
            "where a linear baseline cannot beat chance.",
            "text": "## Question\nWhy does the baseline fail?\n## Result\n"
            f"Held-out accuracy {acc_txt} (see the measured results below).",
            "limitations": "One seed, one dataset, synthetic data.",
        },
    }
    reply = replies.get(name)
    if reply is None:
        raise ValueError(f"research_cycle's scripted model got a prompt for no stage: {name!r}")
    return json.dumps({**reply, "changes": changes})
