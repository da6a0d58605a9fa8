#!/usr/bin/env python3
"""Writes a Neuropixels-1.0-like probeinterface JSON (384 contacts, two per row 20 um apart, x 43/11 and 59/27 um
alternating, one shank) for `spikeline simulate --probe`: python3 scripts/np1_probe.py OUT.json"""
import json
import sys

N = 384
X = [43.0, 11.0, 59.0, 27.0]  # Neuropixels 1.0: channel c at X[c % 4], depth 20 um * (c // 2)
positions = [[X[c % 4], 20.0 * (c // 2)] for c in range(N)]
probe = {
    "annotations": {"manufacturer": "spikeline-test", "model_name": "np1-like", "name": "np1-like"},
    "contact_annotations": {},
    "contact_ids": ["e%d" % c for c in range(N)],
    "contact_plane_axes": [[[1, 0], [0, 1]]] * N,
    "contact_positions": positions,
    "contact_shape_params": [{"width": 12.0}] * N,
    "contact_shapes": ["square"] * N,
    "device_channel_indices": list(range(N)),
    "ndim": 2,
    "shank_ids": ["0"] * N,
    "si_units": "um",
}
with open(sys.argv[1], "w") as out:
    json.dump({"specification": "probeinterface", "version": "0.2.21", "probes": [probe]}, out)
