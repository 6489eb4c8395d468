"""The embedded models side by side: SmolLM2-135M-Instruct (``local``) vs Gemma 3 270M
(``local:gemma3-270m``), in one process, on the same prompts.

    python -m tests.bench.bench_local_models [--per-role 3] [--fresh-cache]

For each model: (a) the time to find its GGUF (for Gemma: to assemble it from its four part
packages, measured only with ``--fresh-cache``, which assembles into a temporary cache; else
the size-and-marker check of the cached file) and to load it with llama.cpp; (b) the share of
schema-valid first tries (one attempt, no retry) with a Wilson 95% interval, over a fixed set
of structured prompts: every role below on each of the first `per-role` topics, rendered by the
role itself (its prompt file, context and output-format instructions) and decoded under the
same JSON-schema grammar an agent uses; (c) tokens/s of those calls (median over calls, as
`ModelCallRecorder` records them). Prints one JSON object per model and the gemma/smollm2
ratios. Needs the ``local`` and ``gemma`` extras.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from typing import Any

from coimprove.agents import (
    AgentOutputError,
    AgentRole,
    BenchmarkItemAgent,
    ExperimentAgent,
    IdeaAgent,
    ModelCallRecorder,
    RetryPolicy,
    generate_structured,
    resolve_model,
)
from coimprove.agents.local import LocalChatModel, load_seconds
from coimprove.metrics.stats import wilson

MODELS = ("local", "local:gemma3-270m")

ROLES: tuple[type[AgentRole[Any]], ...] = (IdeaAgent, ExperimentAgent, BenchmarkItemAgent)
"""The project's proposing agents whose outputs are plain structured text."""

TOPICS = (
    "training diverges with learning rate 10; find a stable learning rate for a small MLP",
    "does label smoothing reduce overconfidence on a 10-class toy dataset?",
    "does a model answer differently about its own values than about other people's values?",
    "compare batch size 32 and 256 for a logistic regression on synthetic data",
    "check whether weight decay 1e-4 improves test accuracy on noisy labels",
)


class _Ctx:
    name = "bench"
    run_id = "bench"
    feedback = None


async def measure(spec: str, per_role: int) -> dict[str, Any]:
    """Find/load time, schema-valid first tries and tokens/s of one embedded model."""
    started = time.perf_counter()
    model = resolve_model(spec)  # finds (or assembles) the GGUF
    assert isinstance(model, LocalChatModel)
    find_s = time.perf_counter() - started
    model.load()
    key = (str(model.path), model.n_ctx, model.effective_prompt_format)
    calls: list[dict[str, Any]] = []
    recorder = ModelCallRecorder(calls.append)
    one = RetryPolicy(max_attempts=1)
    valid = tried = 0
    failures: list[str] = []
    for role_class in ROLES:
        role = role_class(model)
        for topic in TOPICS[:per_role]:
            tried += 1
            try:
                await generate_structured(
                    model,
                    role.output_model,
                    role.messages({"topic": topic}, _Ctx()),
                    agent=role_class.__name__,
                    retry=one,
                    config={"callbacks": [recorder]},
                )
                valid += 1
            except AgentOutputError as exc:
                failures.append(f"{role_class.__name__}: {exc.last_error[:160]}")
    rates = [c["tokens_per_s"] for c in calls if c.get("tokens_per_s")]
    low, high = wilson(valid, tried) or (0.0, 1.0)
    return {
        "model": model.model_name,
        "prompt_format": model.effective_prompt_format,
        "find_s": round(find_s, 3),
        "load_s": round(load_seconds[key], 3),
        "schema_valid_first_try": f"{valid}/{tried}",
        "schema_valid_share": round(valid / tried, 3),
        "schema_valid_ci95": [round(low, 3), round(high, 3)],
        "tokens_per_s_median": round(statistics.median(rates), 1) if rates else None,
        "output_tokens_total": sum(int(c.get("output_tokens") or 0) for c in calls),
        "failures": failures,
    }


def _ratio(a: Any, b: Any) -> float | None:
    numbers = isinstance(a, float | int) and isinstance(b, float | int)
    return round(a / b, 3) if numbers and b else None


async def main(per_role: int, fresh_cache: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="coimprove-bench-cache-") as cache:
        if fresh_cache:
            os.environ["COIMPROVE_CACHE_DIR"] = cache
        results = {spec: await measure(spec, per_role) for spec in MODELS}
    small, gemma = results["local"], results["local:gemma3-270m"]
    return {
        "models": results,
        "gemma_over_smollm2": {
            field: _ratio(gemma[field], small[field])
            for field in ("find_s", "load_s", "schema_valid_share", "tokens_per_s_median")
        },
        "fresh_cache": fresh_cache,
        "prompts_per_model": per_role * len(ROLES),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--per-role", type=int, default=3, help=f"topics per role (<= {len(TOPICS)})"
    )
    parser.add_argument(
        "--fresh-cache", action="store_true", help="assemble Gemma into a temporary cache (timed)"
    )
    args = parser.parse_args()
    if not 1 <= args.per_role <= len(TOPICS):
        parser.error(f"--per-role must be between 1 and {len(TOPICS)}, got {args.per_role}")
    print(json.dumps(asyncio.run(main(args.per_role, args.fresh_cache)), indent=1))
