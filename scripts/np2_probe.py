#!/usr/bin/env python3
"""Writes a Neuropixels-2.0-four-shank-like probeinterface JSON (384 contacts: four shanks 250 um apart, each 96
contacts in two columns 32 um apart and 15 um rows) for `spikeline simulate --probe`: python3 scripts/np2_probe.py
OUT.json"""
import json
import sys

N = 384
PER_SHANK = 96
positions = [[250.0 * (c // PER_SHANK) + 32.0 * (c % 2), 15.0 * ((c % PER_SHANK) // 2)] for c in range(N)]
probe = {
    "annotations": {"manufacturer": "spikeline-test", "model_name": "np2-4shank-like", "name": "np2-4shank-like"},
    "contact_annotations": {},
    "contact_ids": ["s%de%d" % (c // PER_SHANK, c % PER_SHANK) for c in range(N)],
    "contact_plane_axes": [[[1, 0], [0, 1]]] * N,
    "contact_positions": positions,
    "contact_shape_params": [{"width": 12.0}] * N,
    "contact_shapes": ["square"] * N,
    "device_channel_indices": list(range(N)),
    "ndim": 2,
    "shank_ids": [str(c // PER_SHANK) for c in range(N)],
    "si_units": "um",
}
with open(sys.argv[1], "w") as out:
    json.dump({"specification": "probeinterface", "version": "0.2.21", "probes": [probe]}, out)
