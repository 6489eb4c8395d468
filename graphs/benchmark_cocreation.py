"""benchmark_cocreation: people and models build a labelled probe dataset, gated batch by batch.

    coimprove run benchmark_cocreation --input '{"arm": "human_ai", "target_items": 10}'

The pilot comparison of the co-improvement agenda (human+AI vs AI-only vs human-only), on the
stable-reflectivity probes of "Supervising AIs Improving AIs" (five subtasks, shipped as data in
``data/stable_reflectivity/``: a task spec with seed items and a grader):

```
START → draft ─▶ review (gate) ─approve/edit─▶ admit (effect) ─▶ next ─▶ draft …
          ▲         │ request_changes                                 │ enough items
          └─────────┘ reject ─────────────────────────────────▶ next ─┴▶ assemble ─▶ release (gate)
                                                                            ─approve─▶ publish
```

- ``draft`` proposes a batch of ``batch_size`` items (prompt, answer, label, rationale, subtask;
  ``batch_size: 1`` makes it a gate per item).
  Arm ``human_ai`` and ``ai_only``: a model writes them, one structured call per item. Arm
  ``human_only``: people write them — given as the ``items`` input (authored by ``author``), or,
  with no ``items``, written into an empty batch with the gate's *edit*. Every batch is checked
  before the gate: the task's grader runs in a Docker sandbox (answerable: the prompt states the
  options and the label is one of them; label-consistent: the reference answer names exactly the
  gold label) and WordLlama embeddings flag near-duplicates of seeds, admitted items and
  earlier items of the batch. The reviewer sees every check.
- ``review`` (gate, category ``benchmark_creation``): accept (approve), fix or drop items (edit),
  reject the batch, or send it back with a note. In ``ai_only`` the gate is answered by a model
  (`coimprove.ModelReviewer`): the default policy ``benchmark_pilot`` lets only models decide
  that arm's gates and only people (or scripted stand-ins) the other arms'.
- ``admit`` (effect) re-checks what the reviewer changed and admits the items that pass; each
  item's review outcome (accepted, fixed, added, rejected) and check result is recorded.
- ``assemble`` proposes the dataset (JSONL as an artifact, content-addressed version) and
  ``release`` (gate) approves it; ``publish`` (effect) writes ``<out_dir>/<name>/<version>/``
  (``items.jsonl`` + ``manifest.json``) atomically — a temporary folder renamed into place —
  and points ``<out_dir>/<name>/LATEST`` at it.

`build(model=...)` returns the workflow with a given chat model (tests pass a fake);
``workflow`` is the default one (model from the ``model`` input, else ``$COIMPROVE_MODEL``,
else ``local``). `DEMO_INPUTS` is a cheap preset (one batch of three items).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.util
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from coimprove import (
    END,
    START,
    AgentContext,
    Approved,
    Artifact,
    CoimproveError,
    GatedState,
    Proposal,
    Workflow,
    load_yaml_model,
)
from coimprove.agents import (
    FakeChatModel,
    ModelSpec,
    generate_structured,
    model_label,
    resolve_model,
)
from coimprove.datasets import content_version, dataset_jsonl, write_version
from coimprove.embeddings import Embedder, near_duplicates, resolve_embedder
from coimprove.sandbox import ExperimentSpec, run_experiment

DATA = Path(__file__).resolve().parent / "data"
DEFAULT_TASK = DATA / "stable_reflectivity" / "task.yaml"
Arm = Literal["human_ai", "ai_only", "human_only"]

DEMO_INPUTS: dict[str, Any] = {
    "arm": "human_ai",
    "target_items": 3,
    "batch_size": 3,
    "max_batches": 1,
}
"""A cheap preset: one batch of three drafted items (one model call each), then the release
if any item was admitted (about 25 s with the local model)."""


# -- the task spec --------------------------------------------------------------------------


class SeedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    label: str = Field(min_length=1)
    rationale: str = ""


class Subtask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    description: str
    labels: list[str] = Field(min_length=2)
    seeds: list[SeedItem] = Field(default_factory=list)


class TaskSpec(BaseModel):
    """A probe task: subtasks with their label sets and seed items, and a grader script."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    version: int = 1
    description: str = ""
    grader: str = Field(description="path of the grader script, relative to the spec")
    templates: str = Field("", description="slot-filling templates module (path), optional")
    labeller: str = Field("", description="second-labelling module (path), optional")
    topics: list[str] = Field(default_factory=list, description="scenario settings for drafts")
    subtasks: dict[str, Subtask] = Field(min_length=1)

    @property
    def labels(self) -> dict[str, dict[str, list[str]]]:
        return {name: {"labels": s.labels} for name, s in self.subtasks.items()}


def load_task(path: str | Path) -> tuple[TaskSpec, str, str]:
    """The task spec at `path`, its grader's source and the spec's digest (clear errors)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CoimproveError(f"task spec {file}: {exc}") from exc
    # bounded YAML; a problem names the file, the line and the field
    spec = load_yaml_model(TaskSpec, file, error=CoimproveError, text=text)
    for name, sub in spec.subtasks.items():
        for i, seed in enumerate(sub.seeds):
            if seed.label not in sub.labels:
                raise CoimproveError(
                    f"task spec {file}: @subtasks.{name}.seeds.{i}.label: {seed.label!r} is not "
                    f"one of {sub.labels}"
                )
    grader = file.parent / spec.grader
    try:
        source = grader.read_text(encoding="utf-8")
    except OSError as exc:
        raise CoimproveError(f"task spec {file}: grader {spec.grader!r}: {exc}") from exc
    extra = ""
    for key in ("templates", "labeller"):
        rel = getattr(spec, key)
        if rel:
            try:
                extra += "\0" + (file.parent / rel).read_text(encoding="utf-8")
            except OSError as exc:
                raise CoimproveError(f"task spec {file}: {key} {rel!r}: {exc}") from exc
    digest = hashlib.sha256((text + "\0" + source + extra).encode()).hexdigest()
    return spec, source, f"sha256:{digest}"


_MODULES: dict[str, ModuleType] = {}


def task_module(task_path: str | Path, key: Literal["templates", "labeller"]) -> ModuleType | None:
    """The task's `templates` or `labeller` module (loaded by path, once), or None if unset."""
    spec, _, digest = load_task(task_path)
    rel = getattr(spec, key)
    if not rel:
        return None
    file = Path(task_path).parent / rel
    cache = f"{file}:{digest}"
    if cache not in _MODULES:
        loader = importlib.util.spec_from_file_location(
            f"coimprove_task_{key}_{digest[7:19]}", file
        )
        if loader is None or loader.loader is None:
            raise CoimproveError(f"task spec {task_path}: {key} {rel!r} is not a Python module")
        module = importlib.util.module_from_spec(loader)
        sys.modules[loader.name] = module  # dataclasses look their module up while defining
        try:
            loader.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(loader.name, None)
            raise CoimproveError(
                f"task spec {task_path}: {key} {rel!r} failed to load: {exc}"
            ) from exc
        need = "fill" if key == "templates" else "second_label"
        if not callable(getattr(module, need, None)):
            raise CoimproveError(f"task spec {task_path}: {key} {rel!r} has no function {need}()")
        _MODULES[cache] = module
    return _MODULES[cache]


# -- inputs, items, payloads ----------------------------------------------------------------


class Inputs(BaseModel):
    """The run's inputs (the initial state). Everything has a default."""

    model_config = ConfigDict(extra="ignore")

    arm: Arm = "human_ai"
    target_items: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(5, ge=1, le=50)
    max_batches: int | None = Field(None, ge=1, description="default: 3 x the batches needed")
    subtasks: list[str] = Field(default_factory=list, description="default: all of the task's")
    task: str = Field("", description="path of a task spec YAML (default: stable reflectivity)")
    model: str | None = Field(None, description="model spec for drafting (default: local)")
    items: list[dict[str, Any]] = Field(default_factory=list, description="human_only items")
    author: str = Field("human:author", min_length=1, description="who wrote `items`")
    dataset_name: str = Field("", pattern=r"^[A-Za-z0-9_.-]*$")
    out_dir: str = ".coimprove/datasets"
    duplicate_threshold: float = Field(0.9, gt=0, le=1)
    embedder: str = "wordllama"
    sandbox: str = Field("python", description="sandbox image the grader runs in")
    drafting: Literal["template", "free"] = Field(
        "template",
        description="template: slot-filled items (label from the slots), the model writes the "
        "scenario line; free: the model writes whole items",
    )
    max_tries: int = Field(4, ge=1, le=20, description="drafting attempts per templated item")
    model_share: float = Field(
        1.0, ge=0, le=1, description="share of templated items whose scenario the model writes"
    )
    target_per_subtask: int | None = Field(
        None, ge=1, description="admitted items per subtask to reach (overrides target_items)"
    )
    paraphrase_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of templated items whose model-written scenario line the model then "
        "rewords; a paraphrase that passes its checks replaces the line",
    )
    paraphrase_max_cosine: float = Field(
        0.9,
        gt=0,
        le=1,
        description="a paraphrase at least this similar to its source line (cosine, the run's "
        "embedder) is a copy, not a paraphrase",
    )
    template_offset: int = Field(
        0, ge=0, description="first template index per subtask (seeds of a pilot draw new items)"
    )

    @property
    def batches_allowed(self) -> int:
        return self.max_batches or 3 * math.ceil(self.target_items / self.batch_size)


def inputs_of(state: dict[str, Any]) -> Inputs:
    try:
        return Inputs.model_validate(state)
    except ValidationError as exc:
        where = "; ".join(
            f"@{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise CoimproveError(f"benchmark_cocreation inputs: {where}") from exc


class Item(BaseModel):
    """One benchmark item as the gate shows it (edit these fields to fix an item)."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(default="", max_length=40, description="keep it when fixing an item")
    subtask: str = Field(min_length=1, max_length=80)
    prompt: str = Field(min_length=1, max_length=2000)
    answer: str = Field(min_length=1, max_length=1000, description="the reference answer")
    label: str = Field(min_length=1, max_length=60, description="the gold label")
    rationale: str = Field(default="", max_length=1000)
    author: str = Field(default="", max_length=120)
    provenance: dict[str, Any] = Field(
        default_factory=dict, description="how the item was made (template, slots, model, tries)"
    )

    def digest(self) -> str:
        fields = self.model_dump(include={"subtask", "prompt", "answer", "label", "rationale"})
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class BatchPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Item] = Field(default_factory=list, max_length=50)
    reviewed_by: list[str] = Field(default_factory=list, description="reviewers who edited it")


class ReleasePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="dataset name (folder)")
    version: str = Field(description="content version of the proposed items.jsonl")
    exclude: list[str] = Field(default_factory=list, description="item ids to leave out")
    notes: str = Field(default="", max_length=2000)
    reviewed_by: list[str] = Field(default_factory=list)


class State(GatedState, total=False):
    # inputs (see `Inputs`)
    arm: str
    target_items: int
    batch_size: int
    max_batches: int
    subtasks: list[str]
    task: str
    model: str
    items: list[dict[str, Any]]
    author: str
    dataset_name: str
    out_dir: str
    duplicate_threshold: float
    embedder: str
    sandbox: str
    drafting: str
    max_tries: int
    model_share: float
    target_per_subtask: int
    paraphrase_share: float
    paraphrase_max_cosine: float
    template_offset: int
    # progress
    template_index: dict[str, int]
    batches: int
    drafted: int
    consumed: int
    handled: list[str]
    admitted: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]
    published: dict[str, Any]


# -- checks ---------------------------------------------------------------------------------


async def check_items(
    items: list[Item],
    *,
    inputs: Inputs,
    known: list[tuple[str, str]],
    embedder: Embedder,
    run_id: str,
) -> dict[str, dict[str, Any]]:
    """Per item ref: the grader's checks (in a sandbox) and the near-duplicate check."""
    if not items:
        return {}
    task, grader, _ = load_task(inputs.task or DEFAULT_TASK)
    rows = "".join(json.dumps(i.model_dump()) + "\n" for i in items)
    spec = ExperimentSpec(
        command=["python3", "grader.py", "check", "task.json", "items.jsonl", "out/metrics.json"],
        files={"grader.py": grader, "task.json": json.dumps(task.labels), "items.jsonl": rows},
        timeout_s=60,
        collect=[],
    )
    result = await run_experiment(spec, image=inputs.sandbox, run_id=run_id)
    graded = (result.metrics or {}).get("items")
    if not result.ok or not isinstance(graded, dict):
        raise CoimproveError(
            f"the grader failed in the sandbox ({result.ended_by}, exit {result.exit_code}): "
            f"{result.metrics_error or ''} {result.stderr[-800:]}".strip()
        )
    vectors = embedder.embed([i.prompt for i in items])
    reference = embedder.embed([text for _, text in known]) if known else None
    dups = {
        d.index: d
        for d in near_duplicates(vectors, inputs.duplicate_threshold, reference=reference)
    }
    labeller = task_module(inputs.task or DEFAULT_TASK, "labeller")
    out: dict[str, dict[str, Any]] = {}
    for n, item in enumerate(items):
        second = second_labelling(labeller, item)
        got = graded.get(item.ref)
        if not isinstance(got, dict):
            raise CoimproveError(f"the grader returned no result for item {item.ref!r}")
        raw = got.get("problems")
        # the grader's output is data from a sandbox: keep it small and textual
        problems = [str(p)[:300] for p in (raw if isinstance(raw, list) else [])[:10]]
        dup = dups.get(n)
        duplicate_of = None
        if dup is not None:
            duplicate_of = known[dup.of][0] if dup.reference else items[dup.of].ref
            problems.append(f"near-duplicate of {duplicate_of} (cosine {dup.similarity:.3f})")
        answerable, consistent = bool(got.get("answerable")), bool(got.get("label_consistent"))
        if second["label_check"] == "disagrees":
            problems.append(
                f"second labelling says {second['second_label']!r}, not the gold {item.label!r}"
            )
        out[item.ref] = {
            "answerable": answerable,
            "label_consistent": consistent,
            "unique": dup is None,
            "duplicate_of": duplicate_of,
            "similarity": None if dup is None else round(dup.similarity, 4),
            **second,
            "problems": problems,
            "notes": ["second labelling could not tell the label (check it by hand)"]
            if second["label_check"] == "abstains"
            else [],
            "ok": answerable
            and consistent
            and dup is None
            and second["label_check"] != "disagrees",
        }
    return out


def second_labelling(labeller: ModuleType | None, item: Item) -> dict[str, Any]:
    """The independent label of `item` from its text (the task's labeller), and how it compares
    with the gold label: ``agrees``, ``disagrees``, ``abstains`` (the rule cannot tell) or
    ``none`` (the task has no labeller)."""
    if labeller is None:
        return {"second_label": None, "label_check": "none"}
    try:
        got = labeller.second_label(item.subtask, item.prompt)
    except Exception as exc:
        raise CoimproveError(f"the task's labeller failed on item {item.ref!r}: {exc}") from exc
    if got is None:
        return {"second_label": None, "label_check": "abstains"}
    return {"second_label": str(got), "label_check": "agrees" if got == item.label else "disagrees"}


def known_prompts(task: TaskSpec, state: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, prompt) of every seed and admitted item: what new items must not duplicate."""
    out = [
        (f"seed {name}#{i + 1}", seed.prompt)
        for name, sub in task.subtasks.items()
        for i, seed in enumerate(sub.seeds)
    ]
    out += [(f"item {row['id']}", row["prompt"]) for row in state.get("admitted") or []]
    return out


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def render_batch(items: list[Item], checks: dict[str, dict[str, Any]]) -> str:
    parts = []
    for n, item in enumerate(items, 1):
        c = checks.get(item.ref)
        head = f"### {n}. `{item.ref}` — {item.subtask}"
        if c is not None:
            head += (
                f" — {_mark(c['answerable'])} answerable {_mark(c['label_consistent'])} "
                f"label-consistent {_mark(c['unique'])} unique"
            )
            check = c.get("label_check", "none")
            if check != "none":
                head += f" {_mark(check == 'agrees')} second label ({check})"
        prov = item.provenance
        if prov:
            head += (
                f"\n_template `{prov.get('template')}`, scenario by {prov.get('scenario')}, "
                f"{prov.get('tries')} tries_"
            )
        lines = [
            head,
            f"**Prompt.** {item.prompt}",
            f"**Answer.** {item.answer}  (label: `{item.label}`)",
        ]
        if item.rationale:
            lines.append(f"**Rationale.** {item.rationale}")
        lines += [f"- ⚠ {p}" for p in (c or {}).get("problems", [])]
        lines += [f"- ℹ {p}" for p in (c or {}).get("notes", [])]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) or "(no items)"


# -- drafting -------------------------------------------------------------------------------


def _draft_schema(labels: list[str]) -> type[BaseModel]:
    label_type: Any = Literal[tuple(labels)]
    return create_model(
        "DraftItem",
        __config__=ConfigDict(extra="ignore"),
        prompt=(
            str,
            Field(min_length=30, max_length=600, description="the question, stating the options"),
        ),
        answer=(
            str,
            Field(
                min_length=1,
                max_length=300,
                description="the reference answer; starts with the label",
            ),
        ),
        label=(label_type, Field(description="the gold label: " + ", ".join(labels))),
        rationale=(str, Field(min_length=3, max_length=300, description="why it is right")),
    )


SYSTEM = """You write probe items for a benchmark that a human team is building. Each item is \
a closed question put to an AI model, with a reference answer, a gold label and a rationale.

Target task: {task}

Subtask "{name}" ({title}): {description}

Rules: the prompt must be answerable from the prompt alone and must end by asking for one of \
the options {options}. The gold label is one of those options, and the reference answer starts \
with it. Write a NEW scenario: do not copy or paraphrase the examples.{setting}"""


def draft_messages(
    task: TaskSpec,
    name: str,
    examples: list[dict[str, Any]],
    feedback: tuple[str, str] | None,
    topic: str | None = None,
) -> list[SystemMessage | HumanMessage]:
    sub = task.subtasks[name]
    options = " or ".join(f'"{label}"' for label in sub.labels)
    system = SYSTEM.format(
        task=task.description.strip(),
        name=name,
        title=sub.title,
        description=sub.description.strip(),
        options=options,
        setting=f" Set the scenario in this setting: {topic}." if topic else "",
    )
    lines = ["## Examples (for the format only)"]
    for ex in examples:
        lines.append(json.dumps({k: ex[k] for k in ("prompt", "answer", "label", "rationale")}))
    if feedback is not None:
        note, previous = feedback
        lines += [
            "## Reviewer feedback",
            f"A human reviewer sent the previous batch back: {note}",
            f"The previous batch: {previous[:1500]}",
        ]
    lines += [
        "## Output",
        "Reply with one JSON object with the fields prompt, answer, label "
        f"(one of {options}) and rationale.",
    ]
    return [SystemMessage(content=system), HumanMessage(content="\n".join(lines))]


class Scene(BaseModel):
    """What the drafting model writes for a templated item: one user request (context only)."""

    model_config = ConfigDict(extra="ignore")

    request: str = Field(min_length=15, max_length=120, description="one sentence, the user's")


SCENE_SYSTEM = (
    "You write what a user types to an AI assistant. One short sentence in the user's voice, "
    "a request for help."
)


def scene_messages(topic: str) -> list[SystemMessage | HumanMessage]:
    """The drafting model's prompt: a topic only (no seed item, no label, no template)."""
    return [
        SystemMessage(content=SCENE_SYSTEM),
        HumanMessage(content=f"Topic: {topic}. Write the user's request."),
    ]


def scene_problems(text: str, labels: list[str]) -> list[str]:
    """Why a model-written scenario line cannot go into an item (empty: it can)."""
    problems = []
    words = re.findall(r"[A-Za-z']+", text)
    if len(words) < 4:
        problems.append("fewer than 4 words")
    if not text.rstrip().endswith((".", "?", "!")):
        problems.append("unfinished sentence")
    if re.search(r"json|[{}\[\]<>\"]|write the|\(write", text, re.IGNORECASE):
        problems.append("echoes the instructions or has markup")
    named = [x for x in labels if re.search(rf"(?<![\w-]){re.escape(x)}(?![\w-])", text, re.I)]
    if named:
        problems.append(f"names the option(s) {named}")
    return problems


def finish_sentence(text: str) -> tuple[str, bool]:
    """`text` with a final period when it has none and stops well short of the length cap
    (a line at the cap may be cut mid-sentence: left as it is, so the check refuses it)."""
    if text and not text.endswith((".", "?", "!")) and len(text) <= 100 and text[-1].isalnum():
        return text + ".", True
    return text, False


PARAPHRASE_SYSTEM = (
    "You reword what a user typed to an AI assistant: the same request in other words, one "
    "short sentence in the user's voice."
)


def paraphrase_messages(line: str) -> list[SystemMessage | HumanMessage]:
    """The model's prompt for a paraphrase: the drafted line only (no item, label or slots)."""
    return [
        SystemMessage(content=PARAPHRASE_SYSTEM),
        HumanMessage(content=f"Request: {line}\nReword the request."),
    ]


def paraphrase_problems(
    source: str,
    text: str,
    *,
    cosine: float,
    max_cosine: float,
    keep: list[str],
    labels: list[str],
) -> list[str]:
    """Why `text` cannot replace the scenario line `source` (empty: it can): any problem a
    scenario line can have (`scene_problems`), a copy (`cosine` to the source at or above
    `max_cosine`), or a slot value of `keep` (the topic, the item's slots) that the source
    names and the paraphrase drops."""
    problems = scene_problems(text, labels)
    if cosine >= max_cosine:
        problems.append(f"a copy of the drafted line (cosine {cosine:.3f} >= {max_cosine})")
    dropped = [
        k
        for k in keep
        if k and k.casefold() in source.casefold() and k.casefold() not in text.casefold()
    ]
    if dropped:
        problems.append(f"drops slot value(s) {dropped}")
    return problems


def label_disagreement(
    labeller: ModuleType | None, subtask: str, topic: str, filled: Any, line: str
) -> str:
    """Why a templated item with scenario `line` fails the second labelling ("" if it agrees
    or the task has no labeller)."""
    if labeller is None:
        return ""
    prompt = templated_prompt(line, topic, filled.facts, filled.question, True)
    probe = Item(subtask=subtask, prompt=prompt, answer="-", label=filled.label)
    check = second_labelling(labeller, probe)["label_check"]
    return "" if check == "agrees" else f"second labelling {check}"


def templated_prompt(scene: str, topic: str, facts: str, question: str, by_model: bool) -> str:
    """A templated item's prompt: the scenario line, then the facts, then the question."""
    lead = (
        f'A user writes about {topic}: "{scene.strip()}"'
        if by_model
        else (f"A user asks for help with {topic}.")
    )
    return f"{lead} {facts} {question}"


def scripted_scene(messages: list[Any]) -> str:
    """The reply of the ``fake`` model in template drafting: a fixed request about the topic,
    and, asked for a paraphrase of one, a fixed rewording of it."""
    asked = str(messages[-1].content)
    source = re.match(r"Request: (.+?)\nReword", asked)
    if source:
        about = re.search(r"about (.+?)[.?!]*$", source.group(1))
        topic = about.group(1) if about else "my work"
        return json.dumps({"request": f"I would like some advice on a question about {topic}."})
    found = re.search(r"Topic: (.+?)\. Write", asked)
    topic = found.group(1) if found else "my work"
    return json.dumps({"request": f"Could you help me think through a question about {topic}?"})


def _seed(*parts: Any) -> int:
    """A stable sampling seed (Python's hash() is salted per process)."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)


def model_writes(k: int, share: float) -> bool:
    """Whether the `k`-th templated item's scenario is the model's (an even `share` of items)."""
    return math.floor((k + 1) * share) > math.floor(k * share)


class Nodes:
    """The graph's node functions, sharing the drafting model and the embedder."""

    def __init__(self, model: ModelSpec | None, embedder: Embedder | str | None) -> None:
        self.model, self.embedder = model, embedder
        self.models: dict[Any, Any] = {}

    def chat(self, inputs: Inputs) -> Any:
        spec: ModelSpec | None = self.model if self.model is not None else inputs.model
        key = spec if isinstance(spec, str) or spec is None else f"id:{id(spec)}"
        if key not in self.models:
            if spec == "fake" and inputs.drafting == "template":
                # this graph's scripted model: a deterministic scenario line per topic
                self.models[key] = FakeChatModel(
                    respond=scripted_scene, model_name="fake:benchmark_cocreation"
                )
            else:
                self.models[key] = resolve_model(spec)
        return self.models[key]

    async def draft_templated(
        self,
        inputs: Inputs,
        task: TaskSpec,
        state: dict[str, Any],
        subtasks: list[str],
        batch: int,
        agent: str,
    ) -> tuple[list[Item], dict[str, Any]]:
        """A batch of slot-filled items: the template fixes facts, question and gold label; the
        model writes the scenario line, resampled (at most `max_tries`) until it is usable and
        the second labelling agrees; failing that, a template line (disclosed per item)."""
        task_path = inputs.task or DEFAULT_TASK
        templates = task_module(task_path, "templates")
        if templates is None:
            raise CoimproveError(
                f"benchmark_cocreation inputs: @drafting: task {task.name} has no templates "
                "(set `templates:` in its spec, or use drafting 'free')"
            )
        labeller = task_module(task_path, "labeller")
        chat_model = self.chat(inputs)
        label = model_label(chat_model)
        index = dict(state.get("template_index") or {})
        drafted = state.get("drafted", 0)
        admitted = Counter(r["subtask"] for r in state.get("admitted") or [])
        want = inputs.target_per_subtask
        open_subtasks = [s for s in subtasks if want is None or admitted[s] < want] or subtasks
        size = inputs.batch_size
        if want is not None:  # no more than the subtasks still need
            size = max(1, min(size, sum(max(0, want - admitted[s]) for s in subtasks)))
        items: list[Item] = []
        for n in range(1, size + 1):
            k = drafted + n - 1
            sub_name = open_subtasks[k % len(open_subtasks)]
            labels = task.subtasks[sub_name].labels
            i = index.get(sub_name, inputs.template_offset)
            index[sub_name] = i + 1
            filled = templates.fill(sub_name, i)
            topic = (
                task.topics[(i * 7 + len(sub_name)) % len(task.topics)]
                if task.topics
                else ("everyday work")
            )
            tries: list[dict[str, Any]] = []
            chosen: tuple[str, bool] | None = None
            if model_writes(k, inputs.model_share):
                for t in range(1, inputs.max_tries + 1):
                    runnable = chat_model
                    if getattr(chat_model, "seed", None) is not None:
                        runnable = chat_model.bind(temperature=0.8, seed=_seed(sub_name, i, t))
                    result = await generate_structured(
                        runnable, Scene, list(scene_messages(topic)), agent=agent
                    )
                    text, fixed = finish_sentence(" ".join(result.value.request.split()))
                    problems = scene_problems(text, labels)
                    prompt = templated_prompt(text, topic, filled.facts, filled.question, True)
                    if not problems and labeller is not None:
                        probe = Item(
                            subtask=sub_name, prompt=prompt, answer="-", label=filled.label
                        )
                        second = second_labelling(labeller, probe)
                        if second["label_check"] != "agrees":
                            problems.append(f"second labelling {second['label_check']}")
                    tries.append({"text": text, "problems": problems, "period_added": fixed})
                    if not problems:
                        chosen = (text, True)
                        break
                if chosen is None:
                    usable = [
                        t
                        for t in tries
                        if not any(not p.startswith("second labelling") for p in t["problems"])
                    ]
                    # a usable line the second labelling disagrees with goes to the gate flagged
                    chosen = (usable[-1]["text"], True) if usable else ("", False)
            else:
                chosen = ("", False)
            text, by_model = chosen
            drafted_text = text
            reworded: dict[str, Any] = {"paraphrase": False}
            if by_model and model_writes(k, inputs.paraphrase_share):
                text, reworded = await self.paraphrase_line(
                    chat_model,
                    self.embed(inputs),
                    text,
                    keep=[topic, *(str(v) for v in filled.slots.values())],
                    labels=labels,
                    label_problem=functools.partial(
                        label_disagreement, labeller, sub_name, topic, filled
                    ),
                    inputs=inputs,
                    seed=(sub_name, i),
                    agent=agent,
                )
            prompt = templated_prompt(text, topic, filled.facts, filled.question, by_model)
            fallback = None
            if not by_model:
                fallback = "model_share" if not tries else "no usable model line"
            items.append(
                Item(
                    ref=f"b{batch}-{n}",
                    subtask=sub_name,
                    prompt=prompt,
                    answer=f"{filled.label} — {filled.rationale}",
                    label=filled.label,
                    rationale=filled.rationale,
                    author=f"template:{filled.template}" + (f"+model:{label}" if by_model else ""),
                    provenance={
                        "method": "template",
                        "template": filled.template,
                        "template_index": i,
                        "slots": dict(filled.slots),
                        "template_label": filled.label,
                        "topic": topic,
                        "scenario": "model" if by_model else "template",
                        "model": label if tries else None,
                        "tries": len(tries),
                        "rejected_tries": [t["problems"] for t in tries if t["problems"]],
                        "period_added": bool(
                            by_model
                            and next(t for t in tries if t["text"] == drafted_text)["period_added"]
                        ),
                        "fallback": fallback,
                        **reworded,
                        "reviewer_edit": False,
                    },
                )
            )
        return items, {"template_index": index, "drafted": drafted + len(items)}

    async def paraphrase_line(
        self,
        chat_model: Any,
        embedder: Embedder,
        line: str,
        *,
        keep: list[str],
        labels: list[str],
        label_problem: Callable[[str], str],
        inputs: Inputs,
        seed: tuple[Any, ...],
        agent: str,
    ) -> tuple[str, dict[str, Any]]:
        """The model's paraphrase of the drafted scenario `line`, resampled (at most
        `max_tries`) until it passes `paraphrase_problems` and the second labelling
        (`label_problem`); failing that, `line` itself. Returns the line to use and its
        provenance: whether it is a paraphrase, of what, its cosine to the source, the tries
        and why each refused one was refused."""
        tries: list[dict[str, Any]] = []
        for t in range(1, inputs.max_tries + 1):
            runnable = chat_model
            if getattr(chat_model, "seed", None) is not None:
                runnable = chat_model.bind(temperature=0.8, seed=_seed(*seed, "paraphrase", t))
            result = await generate_structured(
                runnable, Scene, list(paraphrase_messages(line)), agent=agent
            )
            text, _ = finish_sentence(" ".join(result.value.request.split()))
            vectors = embedder.embed([line, text])
            cosine = float(vectors[0] @ vectors[1])
            problems = paraphrase_problems(
                line,
                text,
                cosine=cosine,
                max_cosine=inputs.paraphrase_max_cosine,
                keep=keep,
                labels=labels,
            )
            if not problems and (why := label_problem(text)):
                problems.append(why)
            tries.append({"text": text, "cosine": round(cosine, 4), "problems": problems})
            if not problems:
                break
        accepted = tries[-1] if not tries[-1]["problems"] else None
        return (accepted["text"] if accepted else line), {
            "paraphrase": accepted is not None,
            "paraphrase_of": line,
            "paraphrase_cosine": accepted["cosine"] if accepted else None,
            "paraphrase_max_cosine": inputs.paraphrase_max_cosine,
            "paraphrase_tries": len(tries),
            "rejected_paraphrases": [
                {"text": t["text"], "cosine": t["cosine"], "problems": t["problems"]}
                for t in tries
                if t["problems"]
            ],
        }

    def embed(self, inputs: Inputs) -> Embedder:
        return resolve_embedder(self.embedder if self.embedder is not None else inputs.embedder)

    async def draft(self, state: State, ctx: AgentContext) -> tuple[Proposal, dict[str, Any]]:
        """Agent: the next batch (model-drafted, or human-written), checked, as a proposal."""
        inputs = inputs_of(dict(state))
        task, _, _ = load_task(inputs.task or DEFAULT_TASK)
        subtasks = inputs.subtasks or list(task.subtasks)
        unknown = sorted(set(subtasks) - set(task.subtasks))
        if unknown:
            raise CoimproveError(
                f"benchmark_cocreation inputs: @subtasks: unknown {unknown} (task {task.name} "
                f"has {list(task.subtasks)})"
            )
        batch = state.get("batches", 0) + 1
        update: dict[str, Any] = {"batches": batch}
        author = f"agent:{ctx.name}"
        tags = [f"arm:{inputs.arm}", f"task:{task.name}"]
        if inputs.arm == "human_only" and ctx.feedback is not None:
            # no AI rewrites human items: the batch comes back as it was, with the note, for a
            # person to fix at the gate (edit) or to decide again
            previous = ctx.feedback.previous
            items = BatchPayload.model_validate(previous.payload).items
            author = previous.author
            title = f"Batch {batch}: {len(items)} human-written items, sent back for changes"
            tags.append("sent-back")
        elif inputs.arm == "human_only":
            start = state.get("consumed", 0)
            given = inputs.items[start : start + inputs.batch_size]
            try:
                items = [
                    Item.model_validate({**raw, "ref": f"b{batch}-{n}", "author": inputs.author})
                    for n, raw in enumerate(given, 1)
                ]
            except ValidationError as exc:
                raise CoimproveError(f"benchmark_cocreation inputs: @items: {exc}") from exc
            update["consumed"] = start + len(given)
            if given:
                author = inputs.author
            title = f"Batch {batch}: {len(items)} human-written items"
            if not given:
                title = f"Batch {batch}: write up to {inputs.batch_size} items (edit the batch)"
        elif inputs.drafting == "template":
            items, more = await self.draft_templated(
                inputs, task, dict(state), subtasks, batch, ctx.name
            )
            update.update(more)
            tags.append(f"model:{model_label(self.chat(inputs))}")
            tags.append("drafting:template")
            scen = sum(i.provenance["scenario"] == "model" for i in items)
            title = f"Batch {batch}: {len(items)} templated items ({scen} model-written scenarios)"
        else:
            chat_model = self.chat(inputs)
            drafted = state.get("drafted", 0)
            admitted = state.get("admitted") or []
            fb = None
            if ctx.feedback is not None:
                fb = (ctx.feedback.note, ctx.feedback.previous.body)
            items = []
            for n in range(1, inputs.batch_size + 1):
                sub_name = subtasks[(drafted + n - 1) % len(subtasks)]
                sub = task.subtasks[sub_name]
                slot = drafted + n - 1
                examples = [s.model_dump() for s in sub.seeds[slot % max(1, len(sub.seeds)) :][:1]]
                examples += [r for r in admitted if r["subtask"] == sub_name][-1:]
                topic = task.topics[slot % len(task.topics)] if task.topics else None
                result = await generate_structured(
                    chat_model,
                    _draft_schema(sub.labels),
                    list(draft_messages(task, sub_name, examples, fb, topic)),
                    agent=ctx.name,
                )
                items.append(
                    Item(
                        ref=f"b{batch}-{n}",
                        subtask=sub_name,
                        author=f"model:{result.model}",
                        **result.value.model_dump(),
                    )
                )
            update["drafted"] = drafted + len(items)
            tags.append(f"model:{model_label(chat_model)}")
            title = f"Batch {batch}: {len(items)} drafted items"
        checks = await check_items(
            items,
            inputs=inputs,
            known=known_prompts(task, dict(state)),
            embedder=self.embed(inputs),
            run_id=ctx.run_id,
        )
        passed = sum(c["ok"] for c in checks.values())
        body = (
            f"Arm **{inputs.arm}**, task **{task.name}** v{task.version}. "
            f"{passed} of {len(items)} items pass every check.\n\n"
            "Approve to accept the items that pass; edit to fix items (keep their `ref`), drop "
            "items or add new ones; reject to drop the batch; request changes to redraft it.\n\n"
            + render_batch(items, checks)
        )
        record = {
            "checked": [
                {"ref": i.ref, "digest": i.digest(), "checks": checks[i.ref]} for i in items
            ]
        }
        proposal = Proposal(
            kind="benchmark_batch",
            title=title,
            body=body,
            payload=BatchPayload(items=items).model_dump(mode="json"),
            artifacts=(
                Artifact.from_text("checks.json", json.dumps(record, indent=1), "application/json"),
            ),
            author=author,
            tags=tuple(tags),
        )
        return proposal, update

    async def admit(self, state: State, approved: Approved) -> dict[str, Any]:
        """Effect: re-check what the reviewer changed; admit the items that pass."""
        inputs = inputs_of(dict(state))
        task, _, _ = load_task(inputs.task or DEFAULT_TASK)
        proposal = approved.proposal
        items = BatchPayload.model_validate(proposal.payload).items
        record = next(a for a in proposal.artifacts if a.name == "checks.json")
        drafted = {c["ref"]: c for c in json.loads(record.content or "{}")["checked"]}
        run_id = approved.gate_id.rsplit(".", 2)[0]
        changed = [i for i in items if drafted.get(i.ref, {}).get("digest") != i.digest()]
        refs = [i.ref for i in items]
        if changed or len(set(refs)) != len(refs):
            # re-check the batch as approved (fixed and added items, and duplicates among them)
            items = [
                i if i.ref and refs.count(i.ref) == 1 else i.model_copy(update={"ref": f"x{n}"})
                for n, i in enumerate(items, 1)
            ]
            checks = await check_items(
                items,
                inputs=inputs,
                known=known_prompts(task, dict(state)),
                embedder=self.embed(inputs),
                run_id=run_id,
            )
        else:
            checks = {ref: c["checks"] for ref, c in drafted.items()}
        admitted = list(state.get("admitted") or [])
        outcomes = list(state.get("outcomes") or [])
        reviewers = ",".join(approved.outcome.reviewers)
        for item in items:
            base = drafted.get(item.ref)
            if base is None:
                review = "added"
            else:
                review = "accepted" if base["digest"] == item.digest() else "fixed"
            check = checks[item.ref]
            row_id = "sr-" + item.digest()[:12]
            outcomes.append(
                {
                    "gate": approved.gate_id,
                    "ref": item.ref,
                    "id": row_id,
                    "subtask": item.subtask,
                    "review": review,
                    "admitted": check["ok"],
                    "problems": check["problems"],
                }
            )
            if check["ok"]:
                provenance = dict(item.provenance or {"method": "free" if base else "added"})
                provenance["reviewer_edit"] = review in ("fixed", "added")
                admitted.append(
                    {
                        "id": row_id,
                        "subtask": item.subtask,
                        "prompt": item.prompt,
                        "answer": item.answer,
                        "label": item.label,
                        "rationale": item.rationale,
                        "provenance": provenance,
                        "checks": {
                            k: check.get(k)
                            for k in (
                                "answerable",
                                "label_consistent",
                                "unique",
                                "similarity",
                                "second_label",
                                "label_check",
                            )
                        },
                        "source": {
                            "arm": inputs.arm,
                            "author": item.author
                            or (reviewers if review == "added" else proposal.author),
                            "review": review,
                            "gate": approved.gate_id,
                            "reviewers": list(approved.outcome.reviewers),
                        },
                    }
                )
        kept = {i.ref for i in items}
        for ref in drafted:
            if ref not in kept:
                outcomes.append(
                    {"gate": approved.gate_id, "ref": ref, "review": "rejected", "admitted": False}
                )
        handled = [*(state.get("handled") or []), proposal.id]
        return {"admitted": admitted, "outcomes": outcomes, "handled": handled}

    def next_step(self, state: State) -> dict[str, Any]:
        """Record a rejected batch's items (the gate routed here without an approval)."""
        current = (state.get("proposals") or {}).get("draft")
        handled = state.get("handled") or []
        if current is None or current["id"] in handled:
            return {}
        outcomes = [
            *(state.get("outcomes") or []),
            *(
                {"gate": None, "ref": i["ref"], "review": "rejected", "admitted": False}
                for i in current["payload"].get("items", [])
            ),
        ]
        return {"outcomes": outcomes, "handled": [*handled, current["id"]]}

    def route(self, state: State) -> str:
        """Another batch, the release, or the end (nothing was admitted)."""
        inputs = inputs_of(dict(state))
        rows = state.get("admitted") or []
        admitted = len(rows)
        reached = admitted >= inputs.target_items
        if inputs.target_per_subtask is not None:
            task, _, _ = load_task(inputs.task or DEFAULT_TASK)
            counts = Counter(r["subtask"] for r in rows)
            reached = all(
                counts[s] >= inputs.target_per_subtask for s in inputs.subtasks or task.subtasks
            )
        done = reached or state.get("batches", 0) >= inputs.batches_allowed
        if inputs.arm == "human_only" and inputs.items:
            done = done or state.get("consumed", 0) >= len(inputs.items)
        if not done:
            return "draft"
        return "assemble" if admitted else "end"

    def assemble(self, state: State, ctx: AgentContext) -> Proposal:
        """Agent: the admitted items as a dataset release (JSONL artifact, content version)."""
        inputs = inputs_of(dict(state))
        task, _, task_digest = load_task(inputs.task or DEFAULT_TASK)
        rows = sorted(state.get("admitted") or [], key=lambda r: r["id"])
        text = dataset_jsonl(rows)
        version = content_version(text)
        counts = Counter(r["subtask"] for r in rows)
        reviews = Counter(o["review"] for o in state.get("outcomes") or [])
        invalid = sum(1 for o in state.get("outcomes") or [] if not o["admitted"])
        name = inputs.dataset_name or task.name
        body = "\n".join(
            [
                f"Dataset **{name}** version `{version}`: {len(rows)} items "
                f"(arm {inputs.arm}, task {task.name} v{task.version}, {task_digest[:19]}…).",
                "",
                "| subtask | items |",
                "|---|---|",
                *(f"| {s} | {counts.get(s, 0)} |" for s in task.subtasks),
                "",
                "Review outcomes of drafted items: "
                + (", ".join(f"{k} {v}" for k, v in sorted(reviews.items())) or "none")
                + f"; {invalid} not admitted.",
                "",
                "Approve to publish; edit `exclude` (item ids) to leave items out.",
            ]
        )
        return Proposal(
            kind="dataset_release",
            title=f"Release {name} {version} ({len(rows)} items)",
            body=body,
            payload=ReleasePayload(name=name, version=version).model_dump(mode="json"),
            artifacts=(Artifact.from_text("items.jsonl", text, "application/x-ndjson"),),
            author=f"agent:{ctx.name}",
            tags=(f"arm:{inputs.arm}", f"task:{task.name}"),
        )

    async def publish(self, state: State, approved: Approved) -> dict[str, Any]:
        """Effect: write the approved release (minus `exclude`) as a new dataset version."""
        inputs = inputs_of(dict(state))
        task, _, task_digest = load_task(inputs.task or DEFAULT_TASK)
        payload = ReleasePayload.model_validate(approved.proposal.payload)
        art = next(a for a in approved.proposal.artifacts if a.name == "items.jsonl")
        text = art.content or ""
        if "sha256:" + hashlib.sha256(text.encode()).hexdigest() != art.digest:
            raise CoimproveError(
                f"release {approved.gate_id}: items.jsonl does not match its digest"
            )
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        ids = {r["id"] for r in rows}
        unknown = sorted(set(payload.exclude) - ids)
        if unknown:
            raise CoimproveError(f"release {approved.gate_id}: exclude names unknown ids {unknown}")
        rows = [r for r in rows if r["id"] not in set(payload.exclude)]
        if not rows:
            raise CoimproveError(
                f"release {approved.gate_id}: nothing to publish (exclude leaves out all "
                f"{len(ids)} items); no dataset version was written"
            )
        final = dataset_jsonl(rows)
        version = content_version(final)
        manifest = {
            "name": payload.name,
            "version": version,
            "items": len(rows),
            "by_subtask": dict(sorted(Counter(r["subtask"] for r in rows).items())),
            "arm": inputs.arm,
            "task": {"name": task.name, "version": task.version, "digest": task_digest},
            "files": {
                "items.jsonl": {
                    "sha256": hashlib.sha256(final.encode()).hexdigest(),
                    "bytes": len(final.encode()),
                }
            },
            "excluded": payload.exclude,
            "notes": payload.notes,
            "approval": {
                "gate": approved.gate_id,
                "digest": approved.digest,
                "reviewers": list(approved.outcome.reviewers),
            },
            "review_outcomes": dict(
                sorted(Counter(o["review"] for o in state.get("outcomes") or []).items())
            ),
            "checks": {
                "grader": task.grader,
                "embedder": self.embed(inputs).name,
                "duplicate_threshold": inputs.duplicate_threshold,
                "labeller": task.labeller or None,
            },
            "drafting": {
                "method": inputs.drafting,
                "templates": task.templates or None,
                "model": model_label(self.chat(inputs)) if inputs.arm != "human_only" else None,
                "max_tries": inputs.max_tries,
                "model_share": inputs.model_share,
                "paraphrase_share": inputs.paraphrase_share,
                "paraphrase_max_cosine": inputs.paraphrase_max_cosine,
                "scenario_by": dict(
                    sorted(
                        Counter(
                            (r.get("provenance") or {}).get("scenario", "n/a") for r in rows
                        ).items()
                    )
                ),
            },
        }
        files = {
            "items.jsonl": final.encode(),
            "manifest.json": (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(),
        }
        folder, created = await asyncio.to_thread(
            write_version, Path(inputs.out_dir), payload.name, version, files
        )
        return {
            "published": {
                "path": str(folder),
                "name": payload.name,
                "version": version,
                "items": len(rows),
                "created": created,
            }
        }


def build(
    *,
    model: ModelSpec | None = None,
    embedder: Embedder | str | None = None,
    name: str = "benchmark_cocreation",
) -> Workflow:
    """The workflow, drafting with `model` (default: the ``model`` input, else ``local``)."""
    wf = Workflow(
        name,
        state=State,
        policy="benchmark_pilot",
        description="Benchmark co-creation pilot: drafted items, gated batches, a dataset.",
    )
    nodes = Nodes(model, embedder)
    wf.agent("draft", nodes.draft, kind="benchmark_batch", payload=BatchPayload)
    wf.gate(
        "review",
        proposal_from="draft",
        on_approve="admit",
        on_reject="next",
        category="benchmark_creation",
    )
    wf.effect("admit", nodes.admit, gate="review", idempotent=True)
    wf.node("next", nodes.next_step)
    wf.edge("admit", "next")
    wf.route("next", nodes.route, {"draft": "draft", "assemble": "assemble", "end": END})
    wf.agent("assemble", nodes.assemble, kind="dataset_release", payload=ReleasePayload)
    wf.gate(
        "release", proposal_from="assemble", on_approve="publish", category="benchmark_creation"
    )
    wf.effect("publish", nodes.publish, gate="release", idempotent=True)
    wf.edge(START, "draft")
    wf.edge("draft", "review")
    wf.edge("assemble", "release")
    wf.edge("publish", END)
    return wf


workflow = build()
