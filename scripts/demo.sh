#!/usr/bin/env bash
# Sets up and builds, then simulates a 1024-channel 30 kHz recording with ground truth, detects and sorts its
# spikes on the CPU (units learnt from the first 30 s), and scores both against the truth.
# Usage: scripts/demo.sh [OUTPUT_DIR] (default demo_output; about 2.5 GB, mostly the raw recording).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
OUT="${1:-demo_output}"
SPIKELINE="${SPIKELINE_BUILD_DIR:-build}/host/spikeline"
mkdir -p "$OUT"

echo
echo "== 1. simulate: 1024 channels, 30 kHz, 40 s, ground truth (seed 1)"
"$SPIKELINE" simulate --out "$OUT/recording" --channels 1024 --duration 40 --seed 1
echo
echo "== 2. detect on the CPU backend"
"$SPIKELINE" detect "$OUT/recording/recording.bin" --out "$OUT/detected"
echo
echo "== 3. detection scored against the ground truth"
"$SPIKELINE" compare --ground-truth "$OUT/recording/ground_truth" --sorted "$OUT/detected" \
    --json "$OUT/detected/score.json"
echo
echo "== 4. sort: learn the units (first 30 s, then the whole recording), then label every spike with them (following the probe's motion); a Phy folder"
"$SPIKELINE" sort "$OUT/recording/recording.bin" --out "$OUT/sorted"
echo
echo "== 5. sorting scored against the ground truth (SpikeForest conventions)"
"$SPIKELINE" compare --ground-truth "$OUT/recording/ground_truth" --sorted "$OUT/sorted" \
    --json "$OUT/sorted/score.json"
echo
echo "outputs in $OUT/: recording (SpikeGLX .bin/.meta, probe.json, ground_truth/), detected (.npy, score.json),"
echo "sorted (Phy folder: phy template-gui $OUT/sorted/params.py; score.json)"
