#!/usr/bin/env bash
# Everything a lent GPU should run, in one call, within a budget: bench/gpu_session.py says what.
#
#   bash bench/gpu_session.sh [--budget 660]   # on the GPU machine
#   OUT=$(mktemp -d) bash bench/gpu_session.sh --cpu   # the same steps on the CPU, tiny
set -uo pipefail
cd "$(dirname "$0")/.."
exec python bench/gpu_session.py "$@"
