#!/usr/bin/env python3
"""Writes a Neuropixels-1.0-like probeinterface JSON (384 contacts, two per row 20 um apart, x 43/11 and 59/27 um
alternating, one shank) for `spikeline simulate --probe`: python3 scripts/np1_probe.py OUT.json"""
import json
import sys


def write_probe(path, name, positions, shank_ids, contact_ids):
    """A one-probe probeinterface file, contacts wired to channels in order."""
    n = len(positions)
    probe = {
        "annotations": {"manufacturer": "spikeline-test", "model_name": name, "name": name},
        "contact_annotations": {},
        "contact_ids": contact_ids,
        "contact_plane_axes": [[[1, 0], [0, 1]]] * n,
        "contact_positions": positions,
        "contact_shape_params": [{"width": 12.0}] * n,
        "contact_shapes": ["square"] * n,
        "device_channel_indices": list(range(n)),
        "ndim": 2,
        "shank_ids": shank_ids,
        "si_units": "um",
    }
    with open(path, "w") as out:
        json.dump({"specification": "probeinterface", "version": "0.2.21", "probes": [probe]}, out)


if __name__ == "__main__":
    N = 384
    X = [43.0, 11.0, 59.0, 27.0]  # Neuropixels 1.0: channel c at X[c % 4], depth 20 um * (c // 2)
    write_probe(sys.argv[1], "np1-like", [[X[c % 4], 20.0 * (c // 2)] for c in range(N)], ["0"] * N,
                ["e%d" % c for c in range(N)])
