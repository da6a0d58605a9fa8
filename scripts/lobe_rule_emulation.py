#!/usr/bin/env python3
"""Emulates the detector's lobe rule on events detected without it, to compare ratios before building one.

    spikeline detect SIM/recording.bin --out NOLOBE --shadow-ratio 0
    scripts/lobe_rule_emulation.py SIM NOLOBE --rule 128 --rule 128:192:12:39 --rule 160

A rule is OUTSIDE[:INSIDE:FIRST:LAST] in 1/256 (the register's unit): a later event A on a channel whose
neighbourhood (itself and the 16 nearest contacts of its shank within 100 um) holds an earlier event B 1-60 samples
before is dropped when |A| * 256 < |B| * ratio, the ratio being INSIDE for lags FIRST..LAST samples and OUTSIDE
elsewhere. Unlike the detector, B ranges over the surviving events only (not the candidates the duplicate rule
dropped), so the emulated default keeps a little more than the detector does: compare rules with each other.
Prints recall at SNR >= 5 and precision as `spikeline compare` scores detections (+-0.4 ms, 50 um; no drift).
Needs numpy only.
"""
import argparse
import json

import numpy as np

SHADOW_SAMPLES = 60  # 2 ms at 30 kHz
WINDOW = 12  # +-0.4 ms at 30 kHz
RADIUS_UM = 50.0


def neighbourhoods(probe_file):
    probe = json.load(open(probe_file))["probes"][0]
    positions = np.array(probe["contact_positions"], dtype=float)
    shanks = np.array([str(s) for s in probe.get("shank_ids", ["0"] * len(positions))])
    result = []
    for c in range(len(positions)):
        distance = np.linalg.norm(positions - positions[c], axis=1)
        others = np.where((distance <= 100) & (shanks == shanks[c]) & (np.arange(len(positions)) != c))[0]
        others = others[np.lexsort((others, distance[others]))][:16]
        result.append(set(others.tolist()) | {c})
    return positions, result


def load_events(folder):
    times = np.load(folder + "/spike_times.npy").astype(np.int64).ravel()
    channels = np.load(folder + "/spike_channels.npy").astype(np.int64).ravel()
    amplitudes = np.abs(np.load(folder + "/spike_amplitudes.npy").ravel().astype(np.int64))
    order = np.lexsort((channels, times))
    return times[order], channels[order], amplitudes[order]


def load_truth(sim):
    times = np.load(sim + "/ground_truth/spike_times.npy").astype(np.int64)
    units = np.load(sim + "/ground_truth/spike_units.npy")
    table = {}
    for line in open(sim + "/ground_truth/units.tsv").read().splitlines()[1:]:
        fields = line.split("\t")
        table[int(fields[0])] = (int(fields[1]), float(fields[2]))
    order = np.argsort(times, kind="stable")
    times, units = times[order], units[order]
    return times, np.array([table[u][0] for u in units]), np.array([table[u][1] for u in units])


def score(truth, positions, times, channels):
    gt_times, gt_peaks, gt_snr = truth
    used = np.zeros(len(gt_times), bool)
    matched = 0
    for t, c in zip(times, channels):
        first, last = np.searchsorted(gt_times, t - WINDOW), np.searchsorted(gt_times, t + WINDOW + 1)
        best = None
        for j in range(first, last):
            if not used[j] and np.linalg.norm(positions[gt_peaks[j]] - positions[c]) <= RADIUS_UM:
                if best is None or abs(gt_times[j] - t) < abs(gt_times[best] - t):
                    best = j
        if best is not None:
            used[best] = True
            matched += 1
    return used[gt_snr >= 5].mean(), matched / len(times), len(times)


def apply_rule(events, nbhd, outside, inside=None, first_lag=0, last_lag=-1):
    times, channels, amplitudes = events
    keep = np.ones(len(times), bool)
    start = 0
    for k in range(len(times)):
        while times[start] < times[k] - SHADOW_SAMPLES:
            start += 1
        for j in range(start, k):
            lag = times[k] - times[j]
            if lag < 1:
                break
            ratio = inside if inside is not None and first_lag <= lag <= last_lag else outside
            if amplitudes[k] * 256 < amplitudes[j] * ratio and channels[j] in nbhd[channels[k]]:
                keep[k] = False
                break
    return keep


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sim", help="simulate's output folder (probe.json, ground_truth/)")
    parser.add_argument("events", help="detect's output folder, run with --shadow-ratio 0")
    parser.add_argument("--rule", action="append", default=[], help="OUTSIDE[:INSIDE:FIRST:LAST] in 1/256")
    args = parser.parse_args()
    positions, nbhd = neighbourhoods(args.sim + "/probe.json")
    truth = load_truth(args.sim)
    events = load_events(args.events)
    for rule in args.rule or ["128"]:
        parts = [int(p) for p in rule.split(":")]
        keep = apply_rule(events, nbhd, *parts)
        recall, precision, n = score(truth, positions, events[0][keep], events[1][keep])
        print(f"rule {rule}: recall (SNR >= 5) {recall:.4f}, precision {precision:.4f}, {n} events", flush=True)


if __name__ == "__main__":
    main()
