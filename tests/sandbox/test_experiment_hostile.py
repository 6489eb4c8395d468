"""run_experiment against a program that attacks its own result collection (real Docker).

Issue 29 part 1 (a detached process stops the collecting `tar`) and issue 31 item 1 (a detached
process forges the tar stream the host reads) hang and forge on main (7eea174); the stdout
flood passes there too (the engine ends the exec's stream when its main process exits) and
guards that the exec still ends at the main process's exit now that leftovers are killed.
"""

from __future__ import annotations

import time
import uuid

import docker
import pytest

from coimprove.sandbox import experiment
from coimprove.sandbox.conformance import FORGE_PROBE, STALL_PROBE
from coimprove.sandbox.docker import DockerSandbox, count_containers
from coimprove.sandbox.experiment import ExperimentResult, ExperimentSpec, run_experiment
from coimprove.sandbox.images import BuiltImage

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(150)]

TIMEOUT_S = 5.0
GENUINE = '{"accuracy": 0.1}'

# Starts `payload` detached (own session, stdio to /dev/null unless `inherit`), then exits 0
# after writing the genuine metrics.
_LAUNCH = """\
import subprocess, sys
open("out/metrics.json", "w").write({genuine!r})
out = None if {inherit} else subprocess.DEVNULL
subprocess.Popen([sys.executable, "-c", {payload!r}], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=out, stderr=out)
"""

_STALL, _FORGE = STALL_PROBE, FORGE_PROBE

# Floods the stdout it inherited, forever, after the main process has exited.
_FLOOD = """\
import os
chunk = b"x" * 65536
while True:
    os.write(1, chunk)
"""


async def _run(
    payload: str, client: docker.DockerClient, *, inherit: bool = False
) -> tuple[ExperimentResult, float, int]:
    run_id = f"hostile-{uuid.uuid4().hex[:8]}"
    program = _LAUNCH.format(genuine=GENUINE, inherit=inherit, payload=payload)
    spec = ExperimentSpec(
        command=["python3", "main.py"], files={"main.py": program}, timeout_s=TIMEOUT_S
    )
    started = time.monotonic()
    result = await run_experiment(spec, run_id=run_id, client=client)
    took = time.monotonic() - started
    return result, took, count_containers(client, run_id=run_id)


def _bound() -> float:
    return TIMEOUT_S + experiment.EXPERIMENT_GRACE_S


async def test_a_process_that_stops_the_collector_cannot_stall_the_call(
    docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    result, took, left = await _run(_STALL, docker_client)
    assert took <= _bound(), f"run_experiment took {took:.1f}s (> {_bound():g} s)"
    assert left == 0
    # The stopper ends with the exec, so the genuine file is collected, all of it.
    assert result.ended_by == "exit" and result.exit_code == 0, result
    assert result.collection_error is None, result.collection_error
    assert result.metrics == {"accuracy": 0.1}


async def test_a_forged_tar_stream_is_never_reported_as_the_metrics(
    docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    result, took, left = await _run(_FORGE, docker_client)
    assert took <= _bound() and left == 0
    assert result.metrics != {"accuracy": 1.0, "forged": True}
    assert result.metrics == {"accuracy": 0.1} or (not result.ok and result.collection_error)


async def test_a_stdout_flood_after_the_main_process_exits_ends_with_it(
    docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    result, took, left = await _run(_FLOOD, docker_client, inherit=True)
    assert took <= _bound() and left == 0
    # The exec ends when its main process does, not at the timeout, and its output stays capped.
    assert result.ended_by == "exit" and result.exit_code == 0, result.ended_by
    assert result.ok and result.metrics == {"accuracy": 0.1}, result.collection_error


async def test_a_stall_the_exec_end_kill_missed_is_a_failed_collection_within_the_bound(
    docker_client: docker.DockerClient,
    python_image: BuiltImage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The second line: were the exec-end kill to miss the stopper, the read's own time bound
    # kills the sandbox and the call still returns in time, failed, saying why.
    monkeypatch.setattr(DockerSandbox, "_end_leftovers", lambda self: True)
    result, took, left = await _run(_STALL, docker_client)
    assert took <= _bound(), f"run_experiment took {took:.1f}s (> {_bound():g} s)"
    assert left == 0, result.collection_error
    assert not result.ok
    assert result.collection_error and "metrics file" in result.collection_error
    assert result.metrics is None and result.exit_code == 0


# Issue 31 items 2 and 3: results the collection refuses. The run's own outcome (exit code,
# stdout, metrics) is kept, and the refusal is recorded naming what and why.
_MANY_FILES = """\
import os
os.makedirs("out/many", exist_ok=True)
for i in range(12000):
    open(f"out/many/f{i}", "w").close()
open("out/metrics.json", "w").write('{"accuracy": 0.1}')
print("wrote many")
"""

_HUGE_SPARSE = """\
import os
os.makedirs("out/big", exist_ok=True)
with open("out/big/sparse.bin", "wb") as f:
    f.truncate(8 << 30)
open("out/metrics.json", "w").write('{"accuracy": 0.1}')
print("wrote sparse")
"""

_BAD_NAMES = """\
import os
os.makedirs(b"out/names", exist_ok=True)
open(b"out/names/bad-\\xff.txt", "w").write("x")
open("out/names/evil-\\u202etxt.exe", "w").write("x")
open("out/metrics.json", "w").write('{"accuracy": 0.1}')
print("wrote names")
"""


async def _collecting(
    program: str, collect: str, client: docker.DockerClient
) -> tuple[ExperimentResult, int]:
    run_id = f"refused-{uuid.uuid4().hex[:8]}"
    spec = ExperimentSpec(
        command=["python3", "main.py"],
        files={"main.py": program},
        timeout_s=60,
        collect=[collect],
    )
    result = await run_experiment(spec, run_id=run_id, client=client)
    return result, count_containers(client, run_id=run_id)


@pytest.mark.parametrize(
    ("program", "collect", "printed", "why"),
    [
        (_MANY_FILES, "out/many", "wrote many", "more than 10000 files"),
        (_HUGE_SPARSE, "out/big", "wrote sparse", "more than the cap"),
    ],
    ids=["12000-files", "huge-sparse"],
)
async def test_oversized_results_keep_the_run_and_record_the_refusal(
    program: str,
    collect: str,
    printed: str,
    why: str,
    docker_client: docker.DockerClient,
    python_image: BuiltImage,
) -> None:
    result, left = await _collecting(program, collect, docker_client)
    assert left == 0
    assert result.exit_code == 0 and result.ended_by == "exit", result
    assert printed in result.stdout
    assert result.metrics == {"accuracy": 0.1}
    assert not result.ok
    assert result.collection_error and why in result.collection_error, result.collection_error
    result.model_dump_json()  # the record stays writable to the ledger


async def test_result_names_that_are_not_safe_are_refused_by_name(
    docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    result, left = await _collecting(_BAD_NAMES, "out/names", docker_client)
    assert left == 0 and result.exit_code == 0 and result.metrics == {"accuracy": 0.1}
    names = [a.name for a in result.artifacts]
    assert not any("bad-" in name or "evil-" in name for name in names), names
    assert result.rejected, result
    assert "\u202e" not in result.model_dump_json()  # a bidi control is never shown raw
    shown = " ".join([*result.rejected, result.collection_error or ""])
    assert "bad-" in shown and "evil-" in shown, (result.rejected, result.collection_error)
