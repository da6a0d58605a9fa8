#!/usr/bin/env bash
# Sets up and builds, then simulates a 1024-channel 30 kHz recording with ground truth, detects its spikes on the
# CPU and scores the detection against the truth. Usage: scripts/demo.sh [OUTPUT_DIR] (default demo_output).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
OUT="${1:-demo_output}"
SPIKELINE="${SPIKELINE_BUILD_DIR:-build}/host/spikeline"
mkdir -p "$OUT"

echo
echo "== 1. simulate: 1024 channels, 30 kHz, 20 s, ground truth (seed 1)"
"$SPIKELINE" simulate --out "$OUT/recording" --channels 1024 --duration 20 --seed 1
echo
echo "== 2. detect on the CPU backend"
"$SPIKELINE" detect "$OUT/recording/recording.bin" --out "$OUT/detected"
echo
echo "== 3. compare with the ground truth"
"$SPIKELINE" compare --ground-truth "$OUT/recording/ground_truth" --sorted "$OUT/detected" \
    --json "$OUT/detected/score.json"
echo
echo "outputs in $OUT/ (recording: SpikeGLX .bin/.meta + probe.json; detected: .npy files; score.json)"
