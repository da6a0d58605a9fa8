#!/usr/bin/env bash
# Sets up, builds and runs the default test suite (fast; long co-simulation and soak tests carry other labels).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir "${SPIKELINE_BUILD_DIR:-build}" -L default --output-on-failure -j "$(nproc)"
