#!/usr/bin/env python3
"""Emulates the swing rule (a lobe rule by waveform shape) on detect's events: how its ratio was chosen at stop 32.

Since stop 32 the detector applies the rule at 3/4 itself, so on today's events this shows what a lower RATIO
would add; on events of an earlier build (or a detector without it), what the rule does.

    spikeline detect SIM/recording.bin --out DET
    scripts/positive_run_emulation.py SIM DET --ratio 0.6 --ratio 0.75 --ratio 0.9

The rule: an event A is a later phase of an earlier, larger spike when
  - an event B with |B| > |A| lies 1-60 samples (2 ms) before it on A's channel or one of A's neighbours (the
    16 nearest contacts of its shank within 100 um, as the detector's de-duplication), and
  - A's contact went positive just before A's trough: the largest sample of the last positive run before the
    threshold crossing that starts A is >= RATIO * |A|.
Later phases of multiphasic waveforms, seen on contacts where the spike's first phase is positive, pass both
conditions; a new spike rarely follows a positive excursion of its own size. The filtered signal is a double
precision band-pass (2nd-order Butterworth high-pass and low-pass, as the detector's design) of the raw recording
without the common reference; B ranges over the events detect kept. Scores as `spikeline compare` scores
detections (+-0.4 ms, 50 um; no drift): recall at SNR >= 5 and precision. Needs numpy only.
"""
import argparse
import json

import numpy as np

from lobe_rule_emulation import load_truth, neighbourhoods, score

SHADOW_SAMPLES = 60  # 2 ms at 30 kHz
BEFORE = 600  # filter warm-up and history before each event, samples
THRESHOLD_SIGMA = 5.0  # detect's default


def biquad_sections(sample_rate, low_hz, high_hz):
    sections = []
    for corner, high_pass in ((low_hz, True), (high_hz, False)):
        k = np.tan(np.pi * corner / sample_rate)
        norm = 1 / (1 + np.sqrt(2) * k + k * k)
        b = np.array([norm, -2 * norm, norm]) if high_pass else np.array([1, 2, 1]) * k * k * norm
        a = np.array([1, 2 * (k * k - 1) * norm, (1 - np.sqrt(2) * k + k * k) * norm])
        sections.append((b, a))
    return sections


def band_pass(columns, sections):
    """Filters each column of columns (time along axis 0)."""
    for b, a in sections:
        out = np.zeros_like(columns)
        x1 = x2 = y1 = y2 = np.zeros(columns.shape[1])
        for t in range(columns.shape[0]):
            x0 = columns[t]
            y0 = b[0] * x0 + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
            out[t] = y0
            x2, x1, y2, y1 = x1, x0, y1, y0
        columns = out
    return columns


def positive_run_ratios(raw, sections, times, channels, amplitudes_sigma, sigma):
    """Largest sample of the last positive run before each event's crossing, over |event|."""
    windows = np.stack([raw[t - BEFORE : t + 1, c] for t, c in zip(times, channels)], axis=1).astype(float)
    filtered = band_pass(windows, sections)[-61:] / sigma[channels]  # 60 samples before the peak, in sigmas
    ratios = np.zeros(len(times))
    for i in range(len(times)):
        column = filtered[:, i]
        not_beyond = np.where(column >= -THRESHOLD_SIGMA)[0]
        if len(not_beyond) == 0:
            continue
        positive = np.where(column[: not_beyond[-1] + 1] > 0)[0]
        if len(positive) == 0:
            continue
        last = first = positive[-1]
        while first > 0 and column[first - 1] > 0:
            first -= 1
        ratios[i] = column[first : last + 1].max() / amplitudes_sigma[i]
    return ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sim", help="simulate's output folder (recording.bin/.meta, probe.json, ground_truth/)")
    parser.add_argument("events", help="detect's output folder")
    parser.add_argument("--ratio", action="append", type=float, default=[], help="RATIO of the rule (repeatable)")
    args = parser.parse_args()
    meta = dict(line.split("=", 1) for line in open(args.sim + "/recording.meta").read().splitlines() if "=" in line)
    n_channels, sample_rate = int(meta["nSavedChans"]), float(meta["imSampRate"])
    raw = np.memmap(args.sim + "/recording.bin", dtype=np.int16, mode="r").reshape(-1, n_channels)
    sections = biquad_sections(sample_rate, 300.0, 6000.0)
    second = raw[int(sample_rate) : 2 * int(sample_rate)].astype(float)
    sigma = np.median(np.abs(band_pass(second, sections)[BEFORE:]), axis=0) / 0.6745

    positions, nbhd = neighbourhoods(args.sim + "/probe.json")
    truth = load_truth(args.sim)
    times = np.load(args.events + "/spike_times.npy").astype(np.int64).ravel()
    channels = np.load(args.events + "/spike_channels.npy").astype(np.int64).ravel()
    microvolts = np.abs(np.load(args.events + "/spike_amplitudes.npy").ravel().astype(float))
    order = np.lexsort((channels, times))
    times, channels, microvolts = times[order], channels[order], microvolts[order]
    info = json.load(open(args.events + "/detect_info.json"))
    amplitudes_sigma = microvolts / info["microvolts_per_bit"] / sigma[channels]

    inside = (times >= BEFORE) & (times < raw.shape[0])
    ratios = np.zeros(len(times))
    ratios[inside] = positive_run_ratios(raw, sections, times[inside], channels[inside], amplitudes_sigma[inside],
                                         sigma)
    after_larger = np.zeros(len(times), bool)
    start = 0
    for k in range(len(times)):
        while times[start] < times[k] - SHADOW_SAMPLES:
            start += 1
        after_larger[k] = any(
            times[j] < times[k] and microvolts[j] > microvolts[k] and channels[j] in nbhd[channels[k]]
            for j in range(start, k))
    recall, precision, n = score(truth, positions, times, channels)
    print(f"detect as is: recall (SNR >= 5) {recall:.4f}, precision {precision:.4f}, {n} events", flush=True)
    for ratio in args.ratio or [0.75]:
        keep = ~(after_larger & (ratios >= ratio))
        recall, precision, n = score(truth, positions, times[keep], channels[keep])
        print(f"ratio {ratio}: recall (SNR >= 5) {recall:.4f}, precision {precision:.4f}, {n} events", flush=True)


if __name__ == "__main__":
    main()
