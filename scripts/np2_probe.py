#!/usr/bin/env python3
"""Writes a Neuropixels-2.0-four-shank-like probeinterface JSON (384 contacts: four shanks 250 um apart, each 96
contacts in two columns 32 um apart and 15 um rows) for `spikeline simulate --probe`: python3 scripts/np2_probe.py
OUT.json"""
import sys

from np1_probe import write_probe

N = 384
PER_SHANK = 96
write_probe(sys.argv[1], "np2-4shank-like",
            [[250.0 * (c // PER_SHANK) + 32.0 * (c % 2), 15.0 * ((c % PER_SHANK) // 2)] for c in range(N)],
            [str(c // PER_SHANK) for c in range(N)], ["s%de%d" % (c // PER_SHANK, c % PER_SHANK) for c in range(N)])
