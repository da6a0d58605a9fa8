"""Loads a Phy folder as phylib's TemplateModel does (phylib/io/model.py, read as facts; phylib itself is not needed)
and checks what its loader checks or warns about, and the conventions Phy relies on. Usage: check_phy_folder.py DIR.
Exits non-zero, saying what is wrong."""
import os
import sys

import numpy as np

folder = sys.argv[1]
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def load(name):
    return np.load(os.path.join(folder, name))


spike_times = load("spike_times.npy")
n_spikes = spike_times.shape[0]
check(np.all(np.diff(spike_times.astype(np.int64)) >= 0), "spike times must be increasing")
amplitudes = load("amplitudes.npy")
check(amplitudes.shape == (n_spikes,), "amplitudes: one per spike")
spike_templates = load("spike_templates.npy")
check(spike_templates.dtype in (np.uint16, np.uint32, np.int32, np.int64) and spike_templates.shape == (n_spikes,),
      "spike_templates: integer, one per spike")
used = np.unique(spike_templates)
# phylib: "Unreferenced clusters found in templates" when the used ids are not one contiguous range.
check(used.max() - used.min() + 1 == used.size, "Unreferenced clusters found in templates")
templates = load("templates.npy")
check(templates.ndim == 3 and templates.dtype in (np.float32, np.float64), "templates: (n, samples, channels) floats")
n_templates = templates.shape[0]
check(n_templates == spike_templates.max() + 1, "templates: one per template id, none without spikes")
cols = load("template_ind.npy")
check(cols.shape == (n_templates, templates.shape[2]), "template_ind: (templates, channels per template)")
check(np.array_equal(cols, load("templates_ind.npy")), "templates_ind.npy (Kilosort's name) = template_ind.npy")
channel_map = load("channel_map.npy")
n_channels = channel_map.shape[0]
positions = load("channel_positions.npy")
check(positions.shape == (n_channels, 2), "channel_positions: (channels, 2)")
check(load("channel_shanks.npy").shape == (n_channels,), "channel_shanks: one per channel")
for name in ("whitening_mat.npy", "whitening_mat_inv.npy"):
    check(load(name).shape == (n_channels, n_channels), f"{name}: (channels, channels)")

# Features as phylib reads them: (spikes, channels, pcs) after its transpose; depths from the positive part of the
# first PC, weighted by the channels' y.
features = load("pc_features.npy").transpose((0, 2, 1))
feature_cols = load("pc_feature_ind.npy")
check(features.shape[0] == n_spikes, "pc_features: one row per spike")
check(feature_cols.shape == (n_templates, features.shape[1]), "pc_feature_ind: (templates, channels)")
weights = np.maximum(features[:, :, 0], 0) ** 2
ypos = positions[feature_cols[spike_templates].astype(np.uint32), 1]
with np.errstate(divide="ignore", invalid="ignore"):
    depths = np.sum(ypos * weights, axis=1) / np.sum(weights, axis=1)
nan_share = float(np.mean(np.isnan(depths)))
check(nan_share < 0.05, f"phylib's depths are NaN for {100 * nan_share:.1f} % of spikes")

# True amplitudes (phylib get_amplitudes_true): peak-to-peak of template x amplitude, here in uV.
dense = np.zeros((n_templates, templates.shape[1], n_channels), np.float64)
for t in range(n_templates):
    keep = cols[t] >= 0
    dense[t][:, cols[t][keep]] = templates[t][:, keep]
template_ptp = (dense.max(axis=1) - dense.min(axis=1)).max(axis=1)
true_amplitudes = template_ptp[spike_templates] * amplitudes
median_true = float(np.median(true_amplitudes))
check(20 < median_true < 2000, f"median true amplitude {median_true:.1f} is not a spike's size in uV")

# Cluster metadata: every cluster_*.tsv but cluster_info.tsv is a column Phy shows and keeps.
metric_files = [name for name in os.listdir(folder) if name.startswith("cluster_") and name.endswith(".tsv")]
for name in ("cluster_group.tsv", "cluster_snr.tsv", "cluster_isi_violation_ratio.tsv",
             "cluster_presence_ratio.tsv", "cluster_firing_rate_hz.tsv", "cluster_amplitude_uv.tsv"):
    check(name in metric_files, f"{name} missing")
spike_clusters = load("spike_clusters.npy")
for name in metric_files:
    if name == "cluster_info.tsv":
        continue
    lines = [line.rstrip("\n").split("\t") for line in open(os.path.join(folder, name))]
    check(lines[0][0] == "cluster_id" and len(lines[0]) == 2, f"{name}: header should be cluster_id<TAB>name")
    listed = {int(row[0]) for row in lines[1:]}
    check(set(np.unique(spike_clusters)) <= listed, f"{name}: a cluster with spikes is not listed")
amplitude_rows = [line.split("\t") for line in open(os.path.join(folder, "cluster_amplitude_uv.tsv"))][1:]
unit_amplitude = {int(c): float(v) for c, v in amplitude_rows}
agreeing = 0
units = [c for c in np.unique(spike_clusters) if c > 0]
for cluster in units:
    median = float(np.median(amplitudes[spike_clusters == cluster]))
    agreeing += abs(median - unit_amplitude[cluster]) < 0.3 * unit_amplitude[cluster]
check(agreeing >= 0.9 * len(units), f"amplitudes in uV: only {agreeing} of {len(units)} units' medians match "
                                     "their template amplitude")

for failure in failures:
    print("FAIL:", failure)
print(f"{len(failures)} failure(s); depths NaN {100 * nan_share:.2f} %, median true amplitude {median_true:.1f} uV")
sys.exit(1 if failures else 0)
