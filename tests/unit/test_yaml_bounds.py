"""Hostile YAML: every loader refuses it with the project's error and file:line, quickly.

The fuzz test is a hang detector, not a speed test: each example runs under a generous
SIGALRM bound (a hang in the pure-Python loader is interrupted and reported as a failure).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coimprove import _yaml
from coimprove.ablate.spec import spec_from_yaml
from coimprove.errors import CoimproveError, PolicyError
from coimprove.policy import load_policy, policy_from_yaml
from coimprove.reviewers.profiles import profile_from_yaml

HANG_S = 20  # per example; a loader that takes this long on a few KB is stuck
REPO = Path(__file__).resolve().parents[2]
BASE_POLICY = (REPO / "policies" / "default.yaml").read_text(encoding="utf-8")


def laughs(levels: int) -> str:
    lines = ["a0: &a0 [lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "name: x\n" + "\n".join(lines) + "\n"


class Hang(BaseException):
    pass


@contextmanager
def hang_bound(seconds: int = HANG_S) -> Iterator[None]:
    def _alarm(*_: object) -> None:
        raise Hang(f"loader still running after {seconds} s")

    # pytest-timeout (the whole test's bound in CI) uses the same timer: keep what is left of
    # it and set it again afterwards, so the fuzz test stays bounded as a whole too
    outer, interval = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer) if outer else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            left = outer - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), interval)


def _policy_file(text: str, tmp: Path) -> Any:
    path = tmp / "p.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return load_policy(path)


LOADERS: dict[str, Callable[[str], Any]] = {
    "policy": lambda t: policy_from_yaml(t, source="p.yaml"),
    "profile": lambda t: profile_from_yaml(t, source="p.yaml"),
    "sweep": lambda t: spec_from_yaml(t, source="p.yaml"),
    "data": lambda t: _yaml.load_yaml_data("p.yaml", error=CoimproveError, text=t),
}


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (laughs(9), 7, "expands to more than"),
        (laughs(6), 7, "expands to more than"),
        ("name: " + "[" * 500 + "]" * 500 + "\n", 1, "nested more than 64 levels"),
        ("name:\n" + "".join("  " * i + "- \n" for i in range(300)), None, "nested more than"),
        ("name: &x\n  - *x\n", 2, "alias *x refers to a collection that contains it"),
        ("name: &x {a: *x}\n", 1, "alias *x refers to"),
        ("name: !!binary aGVsbG8=\n", 1, "tag !!binary is not allowed"),
        ("name: !!timestamp 2024-01-01\n", 1, "tag !!timestamp is not allowed"),
        ("name: x\nrules: !!set {a, b}\n", 2, "tag !!set is not allowed"),
        ("name: x\nrules: !!omap [a: 1]\n", 2, "tag !!omap is not allowed"),
        ("name: !mine x\n", 1, "tag !mine is not allowed"),
        ("name: !!python/name:os.system x\n", 1, "tag !!python/name:os.system is not allowed"),
        ("name: " + "1" * 5000 + "\n", 1, "integer of more than"),
    ],
    ids=[
        "laughs-9",
        "laughs-6",
        "flow-500-deep",
        "block-300-deep",
        "self-alias-seq",
        "self-alias-map",
        "binary",
        "timestamp",
        "set",
        "omap",
        "local-tag",
        "python-tag",
        "huge-int",
    ],
)
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_hostile_yaml_is_refused_with_file_and_line(
    loader: str, text: str, line: int | None, problem: str | None
) -> None:
    with hang_bound(), pytest.raises(CoimproveError) as caught:
        LOADERS[loader](text)
    message = str(caught.value)
    assert message.startswith("p.yaml:"), message
    if line is not None:
        assert message.startswith(f"p.yaml:{line}:"), message
    if problem is not None:
        assert problem in message


def test_many_aliases_are_refused() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 1500) + "]\n"
    with pytest.raises(CoimproveError, match=r"p\.yaml:2:\d+: refused YAML: more than 1000 alias"):
        _yaml.load_yaml_data("p.yaml", error=CoimproveError, text=text)


def test_a_big_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "# pad\n" * 300_000, encoding="utf-8")
    with pytest.raises(PolicyError, match="larger than"):
        load_policy(path)


def test_json_data_and_shared_anchors_still_load() -> None:
    text = (
        "when: 2024-01-01\nbase: &b {x: 1, y: [1, 2]}\nuse: *b\nmerged:\n  <<: *b\n  z: !!str 3\n"
    )
    data, _ = _yaml.load_yaml_data("p.yaml", error=CoimproveError, text=text)
    assert data["when"] == "2024-01-01"  # a date stays a string (JSON has no date)
    assert data["use"] == {"x": 1, "y": [1, 2]}
    assert data["merged"] == {"x": 1, "y": [1, 2], "z": "3"}


def test_duplicate_key_inside_an_alias_target_names_its_line() -> None:
    text = "name: x\nd: &d\n  quorum: 1\n  quorum: 2\nrules: [*d, *d]\n"
    with pytest.raises(PolicyError, match=r"p\.yaml:4: d\.quorum: duplicate key"):
        policy_from_yaml(text, source="p.yaml")


def test_built_in_yaml_files_still_load() -> None:
    for path in sorted((REPO / "policies").rglob("*.yaml")):
        _yaml.load_yaml_data(path, error=CoimproveError)
    for path in sorted((REPO / "graphs").rglob("*.yaml")):
        _yaml.load_yaml_data(path, error=CoimproveError)


# -- fuzz -------------------------------------------------------------------------------------

TOKENS = [
    "&a",
    "*a",
    "&b ",
    "*b",
    "!!binary ",
    "!!timestamp ",
    "!!omap ",
    "!!set ",
    "!x ",
    "!!python/object:os.system ",
    "[",
    "]",
    "{",
    "}",
    ": ",
    "- ",
    "? ",
    "<<: *a\n",
    "\t",
    "\x00",
    "\ufeff",
    "'",
    '"',
    "|\n",
    ">-\n",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n",
    "---\n",
    "...\n",
    "1e999",
    "0x" + "f" * 1500,
    "\n  ",
    "~",
    ".nan",
    "2024-01-01",
    "\\",
    "#",
    "@",
]


def _insert(text: str, pos: int, piece: str) -> str:
    pos %= len(text) + 1
    return text[:pos] + piece + text[pos:]


mutation = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.sampled_from(TOKENS)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 40)),
    st.tuples(st.just("laughs"), st.integers(0, 10_000), st.integers(2, 12)),
    st.tuples(st.just("nest"), st.integers(0, 10_000), st.integers(10, 600)),
    st.tuples(st.just("text"), st.integers(0, 10_000), st.text(max_size=30)),
)


def _mutate(base: str, steps: list[tuple[str, int, Any]]) -> str:
    text = base
    for op, pos, arg in steps:
        if op == "insert" or op == "text":
            text = _insert(text, pos, arg)
        elif op == "delete":
            pos %= len(text) + 1
            text = text[:pos] + text[pos + arg :]
        elif op == "laughs":
            body = laughs(arg).removeprefix("name: x\n").replace("a", "l")
            text = _insert(text, pos, "\n" + body)
        else:
            text = _insert(text, pos, "[" * arg + "]" * arg)
    return text


@pytest.mark.timeout(300)  # the whole run's bound; each example has its own (hang_bound)
@settings(
    derandomize=True,  # a fixed seed: CI runs the same 300 examples every time
    max_examples=300,
    deadline=None,  # the hang bound below is what catches a stuck loader
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    loader=st.sampled_from(sorted(LOADERS)),
    base=st.sampled_from([BASE_POLICY, laughs(3), "name: x\n"]),
    steps=st.lists(mutation, min_size=1, max_size=6),
)
def test_fuzzed_yaml_never_crashes_or_hangs(
    loader: str, base: str, steps: list[tuple[str, int, Any]]
) -> None:
    text = _mutate(base, steps)
    with hang_bound():
        try:
            LOADERS[loader](text)
        except CoimproveError as exc:
            message = str(exc)
        else:
            return
    assert message.startswith("p.yaml"), message


def test_a_hostile_task_file_is_refused_with_file_and_line(tmp_path: Path) -> None:
    from graphs import benchmark_cocreation as bc

    spec = tmp_path / "task.yaml"
    spec.write_text("name: t\ngrader: g.py\nsubtasks: &s {a: *s}\n", encoding="utf-8")
    with pytest.raises(CoimproveError, match=r"task\.yaml:3:\d+: refused YAML: alias \*s"):
        bc.load_task(spec)


def test_a_hostile_sandbox_definition_is_refused_with_file_and_line(tmp_path: Path) -> None:
    from coimprove.sandbox.errors import SandboxDefinitionError
    from coimprove.sandbox.images import load_sandbox

    folder = tmp_path / "box"
    folder.mkdir()
    (folder / "sandbox.yaml").write_text(laughs(9), encoding="utf-8")
    with hang_bound(), pytest.raises(SandboxDefinitionError, match=r"sandbox\.yaml:7:\d+: refused"):
        load_sandbox(folder)
    (folder / "sandbox.yaml").write_text("name: box\nlimits:\n  memory_mb: lots\n")
    with pytest.raises(SandboxDefinitionError, match=r"sandbox\.yaml:3: limits\.memory_mb"):
        load_sandbox(folder)


def test_a_hostile_task_spec_is_refused_by_the_datasheet_with_file_and_line(
    tmp_path: Path,
) -> None:
    from coimprove.datasheet import DatasheetError, task_labels

    spec = tmp_path / "task.yaml"
    spec.write_text("name: t\nsubtasks: !!binary aGVsbG8=\n", encoding="utf-8")
    with pytest.raises(DatasheetError, match=r"task\.yaml:2:\d+: refused YAML: tag !!binary"):
        task_labels(spec)


def test_no_module_parses_yaml_except_through_the_bounded_loader() -> None:
    """Every YAML the project reads goes through `coimprove._yaml` (no other yaml.load)."""
    import ast

    offenders = []
    for folder in ("coimprove", "graphs", "examples"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path == REPO / "coimprove" / "_yaml.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "yaml"
                    and node.attr.startswith(("load", "safe_load", "full_load", "unsafe_load"))
                ):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: yaml.{node.attr}")
    assert offenders == []
