#!/usr/bin/env python3
"""RMS error of spikeline's online motion estimate against a simulation's ground truth (standard library only).

usage: scripts/motion_error.py SIM/ground_truth SORT_DIR [T_MIN_S]

Compares SORT_DIR/motion.npy (docs/FORMATS.md section 3d) with ground_truth/motion_um.npy (section 2.6) at each
estimate's time and block depth (linear interpolation in depth), from T_MIN_S (default 10) on. The estimate's zero
is the mean position over its first 1.5 s window, so the truth is taken relative to its own mean over that window.
"""
import ast
import math
import struct
import sys

WINDOW_S = 1.5
TRUTH_STEP_S = 0.01


def load_npy(path, what):
    try:
        f = open(path, "rb")
    except OSError as error:
        sys.exit(f"cannot read {path} ({error.strerror}): {what}")
    with f:
        if f.read(6) != b"\x93NUMPY":
            sys.exit(f"{path}: not a .npy file")
        major = f.read(2)[0]
        header_len = struct.unpack("<H" if major == 1 else "<I", f.read(2 if major == 1 else 4))[0]
        header = ast.literal_eval(f.read(header_len).decode("latin1"))
        if header["descr"] != "<f8" or header["fortran_order"]:
            sys.exit(f"{path}: expected little-endian float64 in C order, got {header['descr']}")
        data = f.read()
    values = struct.unpack(f"<{len(data) // 8}d", data)
    return values, header["shape"]


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    truth_dir, sort_dir = sys.argv[1], sys.argv[2]
    t_min = float(sys.argv[3]) if len(sys.argv) == 4 else 10.0
    no_truth = "the ground truth's drift: simulate with --drift-model to have one"
    no_estimate = "the sort folder's motion estimate: sort without --no-motion to have one"
    truth, (n_truth, n_depths) = load_npy(f"{truth_dir}/motion_um.npy", no_truth)
    depths, _ = load_npy(f"{truth_dir}/motion_depths_um.npy", no_truth)
    estimate, (n_estimates, n_blocks) = load_npy(f"{sort_dir}/motion.npy", no_estimate)
    times, _ = load_npy(f"{sort_dir}/motion_times_s.npy", no_estimate)
    blocks, _ = load_npy(f"{sort_dir}/motion_blocks.npy", no_estimate)

    def truth_at(t, y):
        row = min(int(round(t / TRUTH_STEP_S)), n_truth - 1) * n_depths
        if y <= depths[0]:
            return truth[row]
        for k in range(1, n_depths):
            if y <= depths[k]:
                f = (y - depths[k - 1]) / (depths[k] - depths[k - 1])
                return (1 - f) * truth[row + k - 1] + f * truth[row + k]
        return truth[row + n_depths - 1]

    squared, count = 0.0, 0
    first_window = int(WINDOW_S / TRUTH_STEP_S)
    for b in range(n_blocks):
        y = blocks[2 * b + 1]
        zero = sum(truth_at(k * TRUTH_STEP_S, y) for k in range(first_window)) / first_window
        for i in range(n_estimates):
            if times[i] >= t_min:
                error = estimate[i * n_blocks + b] - (truth_at(times[i], y) - zero)
                squared += error * error
                count += 1
    if count == 0:
        sys.exit("no estimate after T_MIN_S")
    print(f"motion RMS error {math.sqrt(squared / count):.2f} um over {count} block estimates (t >= {t_min:g} s)")


if __name__ == "__main__":
    main()
