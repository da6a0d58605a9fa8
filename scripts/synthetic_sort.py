#!/usr/bin/env python3
"""Writes a Phy folder shaped like a large spikeline sort (for measuring `spikeline report` at scale without sorting
hours of 1024-channel data): N units on the built-in 1024-channel layout, Poisson trains with a 1.5 ms refractory
period over D seconds, one bi-phasic template per unit on its 8 nearest contacts, amplitudes drifting slowly,
pc_features with the template's energy per contact, a linear motion estimate. Standard library only.

usage: synthetic_sort.py OUT_DIR [--units 1000] [--seconds 600] [--seed 1]"""
import argparse
import array
import json
import math
import os
import random
import struct


def write_npy(path, typecode, descr, shape, data):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else ""))
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as out:
        out.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        out.write(data if isinstance(data, (bytes, bytearray)) else array.array(typecode, data).tobytes())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    rate, channels, width = 30000.0, 1024, 46
    # The built-in layout: 8 shanks of 128 contacts, 2 columns 32 um apart, 20 um pitch, shanks 250 um apart.
    positions = [(250.0 * (c // 128) + 32.0 * (c % 2), 20.0 * ((c % 128) // 2)) for c in range(channels)]
    units = []
    for u in range(args.units):
        peak = rng.randrange(channels)
        shank = peak // 128
        near = sorted((c for c in range(shank * 128, shank * 128 + 128)),
                      key=lambda c: (positions[c][0] - positions[peak][0]) ** 2 + (positions[c][1] - positions[peak][1]) ** 2)[:8]
        units.append({"peak": peak, "channels": near, "rate": math.exp(rng.gauss(math.log(4), 0.8)),
                      "amplitude": rng.uniform(40, 300)})
    # Spikes of every unit, merged in time order.
    spikes = []
    for u, unit in enumerate(units):
        t = 0.0
        while True:
            t += 0.0015 + rng.expovariate(unit["rate"])
            if t >= args.seconds:
                break
            spikes.append((int(t * rate), u))
    spikes.sort()
    n = len(spikes)
    times = array.array("Q", (s[0] for s in spikes))
    clusters = array.array("i", (s[1] + 1 for s in spikes))
    amplitudes = array.array("d", (units[s[1]]["amplitude"] * (1 + 0.2 * math.sin(s[0] / rate / 120)) for s in spikes))
    write_npy(os.path.join(args.out, "spike_times.npy"), "Q", "<u8", (n,), times.tobytes())
    write_npy(os.path.join(args.out, "spike_clusters.npy"), "i", "<i4", (n,), clusters.tobytes())
    write_npy(os.path.join(args.out, "spike_templates.npy"), "i", "<i4", (n,), array.array("i", (s[1] for s in spikes)).tobytes())
    write_npy(os.path.join(args.out, "amplitudes.npy"), "d", "<f8", (n,), amplitudes.tobytes())
    templates, template_ind, rows = array.array("f"), array.array("i"), []
    for unit in units:
        px, py = positions[unit["peak"]]
        scale = [1 / (1 + ((positions[c][0] - px) ** 2 + (positions[c][1] - py) ** 2) / 900) for c in unit["channels"]]
        for s in range(width):
            x = (s - 15) / 30000 * 1000  # ms from the trough
            shape = -math.exp(-(x / 0.15) ** 2) + 0.4 * math.exp(-((x - 0.45) / 0.25) ** 2)
            templates.extend(unit["amplitude"] * shape * k for k in scale)
        template_ind.extend(unit["channels"])
        rows.append(array.array("f", [unit["amplitude"] * k for k in scale] + [0.0] * 16).tobytes())
    write_npy(os.path.join(args.out, "templates.npy"), "f", "<f4", (args.units, width, 8), templates.tobytes())
    write_npy(os.path.join(args.out, "template_ind.npy"), "i", "<i4", (args.units, 8), template_ind.tobytes())
    write_npy(os.path.join(args.out, "pc_features.npy"), "f", "<f4", (n, 3, 8), b"".join(rows[s[1]] for s in spikes))
    write_npy(os.path.join(args.out, "channel_positions.npy"), "d", "<f8", (channels, 2),
              array.array("d", [v for p in positions for v in p]).tobytes())
    counts = [0] * args.units
    for _, u in spikes:
        counts[u] += 1
    with open(os.path.join(args.out, "cluster_info.tsv"), "w") as out:
        out.write("cluster_id\tgroup\tn_spikes\tfiring_rate_hz\tsnr\tisi_violation_ratio\tpresence_ratio\tch\tamplitude\n")
        out.write(f"0\tnoise\t0\t0\t0\t0\t0\t-1\t0\n")
        for u, unit in enumerate(units):
            snr = unit["amplitude"] / 12
            out.write(f"{u + 1}\t{'good' if snr >= 5 else 'mua'}\t{counts[u]}\t{counts[u] / args.seconds:.4f}\t{snr:.3f}"
                      f"\t0.00000\t1.000\t{unit['peak']}\t{unit['amplitude']:.2f}\n")
    estimates = int(args.seconds / 0.5)
    blocks = [(s, 100.0 + 200.0 * b) for s in range(8) for b in range(7)]
    write_npy(os.path.join(args.out, "motion_times_s.npy"), "d", "<f8", (estimates,),
              array.array("d", (1.5 + 0.5 * e for e in range(estimates))).tobytes())
    write_npy(os.path.join(args.out, "motion_blocks.npy"), "d", "<f8", (len(blocks), 2),
              array.array("d", [v for b in blocks for v in b]).tobytes())
    write_npy(os.path.join(args.out, "motion.npy"), "d", "<f8", (estimates, len(blocks)),
              array.array("d", (20.0 * e / estimates for e in range(estimates) for _ in blocks)).tobytes())
    with open(os.path.join(args.out, "spikeline_sort.json"), "w") as out:
        json.dump({"format": "synthetic sort (scripts/synthetic_sort.py)", "recording": "synthetic", "probe":
                   "spikeline-default-1024", "sample_rate": rate, "n_channels": channels,
                   "n_frames": int(args.seconds * rate), "n_spikes": n, "n_unsorted": 0, "backend": "none",
                   "motion_tracking": True, "motion_estimates": estimates}, out, indent=2)
    print(f"{args.out}: {args.units} units, {n} spikes, {args.seconds:.0f} s")


if __name__ == "__main__":
    main()
