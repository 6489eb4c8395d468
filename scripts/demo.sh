#!/usr/bin/env bash
# Install coimprove with the embedded model and run `coimprove demo` (README's first command).
# Needs root (or sudo) once: Debian's debootstrap builds the sandbox base image locally,
# because this kind of machine has a Docker engine but no image registry.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! command -v debootstrap >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

source scripts/build-env.sh   # how llama-cpp-python is compiled (portable, not -march=native)
# local: llama-cpp-python builds from source the first time (~7 min on 2 cores), then is cached.
python -m pip install -q -e ".[local]"

# The sandbox image (debootstrap -> docker import -> docker build); reused when unchanged.
$SUDO "$(command -v python)" -m coimprove sandbox build python

exec python -m coimprove demo "$@"
