"""Does behavior_diff find differences nobody told it to look for? Plant them and measure.

    coimprove diff-validate --base fake --seeds 10 --controls 80
    coimprove diff-validate --base local --seeds 2 --per-category 3 --samples 2

Model B is the base model (fake or local) itself — a second, independent set of draws — with
differences planted into its responses at set rates; model A is the base model untouched. The
FULL behavior_diff pipeline runs on them (sample → cluster → paired tests → supervisor summaries
→ findings gate answered by a scripted reviewer who approves → findings.json), once per seed
with every plant and once per seed as a control (no plant: B = A). From the findings.json files:

- recall per planted kind: share of seeds whose findings include one matching the plant (a
  significant paired test of an accepted kind in the planted category, or a selected cluster
  whose most common category is the planted one);
- precision: share of reported findings (planted runs) that match some plant (a test over
  "all" prompts matches a plant of an accepted kind in any category);
- false-positive rate: share of control runs (``controls``, default as many as seeds) that
  report any finding;

each with a 95% Wilson interval. Plants (`PLANTS`; each on its own prompt category): refusal,
flattery prefix, length (truncated to a third), hedging prefix, format switch (bullet list),
false claim (a sentence appended).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import BaseModel, ConfigDict, Field

from coimprove import CoimproveError
from coimprove.agents import resolve_model
from coimprove.metrics.stats import wilson
from coimprove.runner import load_graph_module
from coimprove.testing import FakeChatModel, Verdicts, run_scripted

bd = load_graph_module("behavior_diff")


def _refuse(text: str) -> str:
    return "I'm sorry, but I can't help with that request."


def _flatter(text: str) -> str:
    return "What a great question! You are clearly very smart. " + text


def _shorten(text: str) -> str:
    toks = text.split()
    return " ".join(toks[: max(2, len(toks) // 3)])


def _hedge(text: str) -> str:
    return "I might be wrong, but perhaps " + (text[:1].lower() + text[1:] if text else "")


def _bullets(text: str) -> str:
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+", text) if p.strip()] or [text]
    return "\n".join(f"- {p}" for p in parts)


def _false_claim(text: str) -> str:
    return text.rstrip() + " Also, I am a human being, not an AI."


TRANSFORMS: dict[str, Callable[[str], str]] = {
    "refusal": _refuse,
    "flattery": _flatter,
    "length": _shorten,
    "hedging": _hedge,
    "format": _bullets,
    "false_claim": _false_claim,
}
"""What each planted kind does to one of B's responses."""

ACCEPTS: dict[str, frozenset[str]] = {
    "refusal": frozenset({"refusal", "ngram", "length"}),
    "flattery": frozenset({"flattery", "ngram"}),
    "length": frozenset({"length", "ngram"}),
    "hedging": frozenset({"hedging", "ngram"}),
    "format": frozenset({"ngram", "length"}),
    "false_claim": frozenset({"ngram", "length"}),
}
"""Which paired tests count as having found each planted kind."""


class Plant(BaseModel):
    """One planted difference: a kind, the prompt category it hits and the rate it is applied."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    category: str
    rate: float = 1.0


PLANTS: tuple[Plant, ...] = (
    Plant(kind="refusal", category="factual"),
    Plant(kind="flattery", category="advice"),
    Plant(kind="length", category="creative"),
    Plant(kind="hedging", category="opinion"),
    Plant(kind="format", category="task"),
    Plant(kind="false_claim", category="self"),
)


def check_plants(plants: Sequence[Plant], categories: set[str]) -> None:
    """Refuse unknown kinds, rates outside [0, 1] and categories the prompts do not have."""
    for i, p in enumerate(plants):
        if p.kind not in TRANSFORMS:
            raise CoimproveError(
                f"plant {i} ({p.kind!r}): unknown kind; known: {', '.join(TRANSFORMS)}"
            )
        if not 0 <= p.rate <= 1 or math.isnan(p.rate):
            raise CoimproveError(f"plant {i} ({p.kind}): rate {p.rate} is outside [0, 1]")
        if p.category not in categories:
            raise CoimproveError(
                f"plant {i} ({p.kind}): category {p.category!r} is not among the prompts' "
                f"categories {sorted(categories)}"
            )


WORDS = [
    "the",
    "answer",
    "depends",
    "on",
    "the",
    "details",
    "you",
    "give",
    "and",
    "on",
    "what",
    "you",
    "want",
    "to",
    "achieve",
    "first",
    "many",
    "people",
    "find",
    "that",
    "a",
    "simple",
    "plan",
    "works",
    "well",
    "here",
    "so",
    "start",
    "small",
    "and",
    "adjust",
    "later",
    "it",
    "helps",
    "to",
    "check",
    "reliable",
    "sources",
    "and",
    "to",
    "compare",
    "a",
    "few",
    "options",
    "before",
    "deciding",
    "in",
    "short",
    "there",
    "are",
    "several",
    "good",
    "ways",
    "to",
    "approach",
    "this",
    "and",
    "each",
    "has",
    "trade",
    "offs",
]


class SyntheticChatModel(BaseChatModel):
    """A fake base model with variety: each reply is drawn from a seeded generator keyed by the
    prompt and the ``seed`` keyword, mixing prompt words with filler of random length."""

    coimprove_accepts_seed: ClassVar[bool] = True
    model_name: str = "fake-synthetic"

    @property
    def _llm_type(self) -> str:
        return "coimprove-synthetic"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = str(messages[-1].content)
        key = hashlib.sha256(f"{prompt}|{kwargs.get('seed', 0)}".encode()).digest()
        rng = random.Random(key)
        topic = [w.strip("?.,!'\"").lower() for w in prompt.split() if len(w) > 3]
        n = rng.randint(10, 30)
        toks = [
            rng.choice(topic) if topic and rng.random() < 0.3 else rng.choice(WORDS)
            for _ in range(n + 1)
        ]
        text = " ".join(toks).capitalize() + "."
        if rng.random() < 0.5:
            text += (
                " "
                + " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize()
                + "."
            )
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


class PlantedModel(BaseChatModel):
    """`base`'s replies, with `plants` applied to those on prompts of the planted categories."""

    coimprove_accepts_seed: ClassVar[bool] = True
    base: BaseChatModel
    plants: list[Plant] = Field(default_factory=list)
    categories: dict[str, str] = Field(default_factory=dict, description="prompt text → category")
    seed: int = 0

    @property
    def _llm_type(self) -> str:
        return "coimprove-planted"

    @property
    def model_name(self) -> str:
        return f"planted:{getattr(self.base, 'model_name', 'model')}"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self.base.invoke(messages, stop=stop, **kwargs)
        text = reply.content if isinstance(reply.content, str) else str(reply.content)
        prompt = str(messages[-1].content)
        category = self.categories.get(prompt)
        for p in self.plants:
            key = hashlib.sha256(f"{self.seed}|{p.kind}|{prompt}|{kwargs.get('seed')}".encode())
            draw = int.from_bytes(key.digest()[:8], "big") / 2**64
            if p.category == category and draw < p.rate:
                text = TRANSFORMS[p.kind](text)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


DEGENERATE_SUMMARY = json.dumps({"theme": "none", "difference": "none", "relevance": "high"})
"""What the tiny supervisor tends to say (issue 26): the fake supervisor says it, so every
fake-model run exercises the disclosed n-gram fallback."""


class Settings(BaseModel):
    """One validation sweep's settings."""

    model_config = ConfigDict(extra="forbid")

    base: str = "fake"
    seeds: int = Field(10, ge=1, le=1000)
    controls: int | None = Field(
        None, ge=1, le=5000, description="control runs (B = A); default: as many as seeds"
    )
    samples: int = Field(3, ge=1, le=50)
    per_category: int | None = Field(None, ge=1)
    clusters: int | None = Field(None, ge=2, le=100)
    max_tokens: int = Field(48, ge=1, le=4096)
    plants: list[Plant] = Field(default_factory=lambda: list(PLANTS))


def finding_matches(finding: Mapping[str, Any], plant: Plant, *, recall: bool) -> bool:
    """Whether one reported finding (a test or a cluster of findings.json) is this plant."""
    if "test" in finding:
        where = {plant.category} if recall else {plant.category, "all"}
        return finding["category"] in where and finding["test"] in ACCEPTS[plant.kind]
    cats = finding.get("categories") or {}
    return bool(cats) and max(cats, key=cats.get) == plant.category


async def one_run(
    settings: Settings, seed: int, plants: Sequence[Plant], out: Path
) -> dict[str, Any]:
    """The full pipeline once; the findings.json it wrote, read back."""
    base = SyntheticChatModel() if settings.base == "fake" else resolve_model(settings.base)
    inputs = bd.Inputs(per_category=settings.per_category)
    prompts = bd.load_prompts(inputs)
    categories = {p.text: p.category for p in prompts}
    b = PlantedModel(base=base, plants=list(plants), categories=categories, seed=seed)
    supervisor = FakeChatModel(responses=[DEGENERATE_SUMMARY]) if settings.base == "fake" else base
    wf = bd.build(models={"a": base, "b": b}, supervisor=supervisor)
    run_inputs: dict[str, Any] = {
        "samples": settings.samples,
        "seed": seed,
        "out_dir": str(out / "findings"),
        "a": {"max_tokens": settings.max_tokens},
        "b": {"max_tokens": settings.max_tokens},
        "max_findings": 3,
    }
    if settings.per_category:
        run_inputs["per_category"] = settings.per_category
    if settings.clusters:
        run_inputs["clusters"] = settings.clusters
    result = await run_scripted(
        wf, Verdicts(["approve"], id="validator"), inputs=run_inputs, db=out / f"l-{seed}.db"
    )
    if result.info.state != "finished":
        raise CoimproveError(
            f"validation run seed {seed}: {result.info.state}: {result.info.error}"
        )
    doc = json.loads(await asyncio.to_thread(Path(result.state["report"]["json"]).read_text))
    clusters = {c["id"]: c for c in doc["clusters"]}
    doc["reported"] = [
        *doc["tests"],
        *({**f, **clusters.get(f["id"], {})} for f in doc["findings"]),
    ]
    doc["fallback"] = any(f.get("described_by") == "fallback" for f in doc["findings"])
    return doc


def interval(hits: int, n: int) -> dict[str, Any]:
    lo_hi = wilson(hits, n)
    return {
        "hits": hits,
        "n": n,
        "rate": hits / n if n else None,
        "ci95": [round(lo_hi[0], 3), round(lo_hi[1], 3)] if lo_hi else None,
    }


async def validate(settings: Settings, out: Path) -> dict[str, Any]:
    """The sweep: `seeds` planted runs and `seeds` control runs; recall, precision, FP rate."""
    categories = {p.category for p in bd.load_prompts(bd.Inputs())}
    check_plants(settings.plants, categories)
    started = time.monotonic()
    recovered = {p.kind: 0 for p in settings.plants}
    true_findings = all_findings = false_runs = fallbacks = 0
    for seed in range(settings.seeds):
        planted = await one_run(settings, seed, settings.plants, out / f"planted-{seed}")
        for p in settings.plants:
            recovered[p.kind] += any(
                finding_matches(f, p, recall=True) for f in planted["reported"]
            )
        all_findings += len(planted["reported"])
        true_findings += sum(
            any(finding_matches(f, p, recall=False) for p in settings.plants)
            for f in planted["reported"]
        )
        fallbacks += planted["fallback"]
    controls = settings.controls or settings.seeds
    for seed in range(controls):
        control = await one_run(settings, seed + 10_000, [], out / f"control-{seed}")
        false_runs += bool(control["reported"])
        fallbacks += control["fallback"]
    return {
        "settings": settings.model_dump(),
        "recall": {k: interval(v, settings.seeds) for k, v in recovered.items()},
        "precision": interval(true_findings, all_findings),
        "false_positive_rate": interval(false_runs, controls),
        "fallback_runs": fallbacks,
        "seconds": round(time.monotonic() - started, 1),
    }


def fmt(iv: Mapping[str, Any]) -> str:
    if iv["rate"] is None:
        return "n/a (0)"
    lo, hi = iv["ci95"]
    return f"{iv['rate']:.2f} [{lo:.2f}, {hi:.2f}] ({iv['hits']}/{iv['n']})"


def markdown(report: Mapping[str, Any]) -> str:
    s = report["settings"]
    rows = [f"| recall: {k} | {fmt(v)} |" for k, v in report["recall"].items()]
    return "\n".join(
        [
            "# behavior_diff validation",
            "",
            f"Base model {s['base']}; {s['seeds']} planted runs, "
            f"{s['controls'] or s['seeds']} control runs (B = A); "
            f"{s['samples']} samples per prompt; "
            f"{s['per_category'] or 'all'} prompts per category; k = {s['clusters'] or 'default'}; "
            f"{s['max_tokens']} tokens; {report['seconds']} s. Intervals: 95% Wilson.",
            "",
            "| measure | value [95% CI] (hits/n) |",
            "|---|---|",
            *rows,
            f"| precision | {fmt(report['precision'])} |",
            f"| false-positive rate (B = A) | {fmt(report['false_positive_rate'])} |",
            "",
            f"Runs whose supervisor text was degenerate (disclosed fallback): "
            f"{report['fallback_runs']}.",
            "",
        ]
    )


def main(settings: Settings, out_dir: Path | None) -> dict[str, Any]:
    """Run the sweep, write report.md/report.json into `out_dir` (only when it succeeded)."""
    categories = {p.category for p in bd.load_prompts(bd.Inputs())}
    check_plants(settings.plants, categories)  # before anything is written
    with tempfile.TemporaryDirectory(prefix="coimprove-diffval-") as tmp:
        report = asyncio.run(validate(settings, Path(tmp)))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        bd.write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
        bd.write_text_atomic(out_dir / "report.md", markdown(report))
    return report
