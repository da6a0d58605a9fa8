"""Checks an NWB file spikeline wrote against the NWB 2.x layout (nwb-schema 2.7 core, hdmf-common) and the Phy
folder it came from. Usage: check_nwb.py FILE.nwb SORT_DIR [RAW.bin]. Exits non-zero, saying what is wrong."""
import glob
import os
import sys

import h5py
import numpy as np

nwb_path, sort_dir = sys.argv[1], sys.argv[2]
raw_path = sys.argv[3] if len(sys.argv) > 3 else None
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def typed(obj, neurodata_type, namespace):
    check(text(obj.attrs.get("neurodata_type", "")) == neurodata_type,
          f"{obj.name}: neurodata_type {obj.attrs.get('neurodata_type')} != {neurodata_type}")
    check(text(obj.attrs.get("namespace", "")) == namespace,
          f"{obj.name}: namespace {obj.attrs.get('namespace')} != {namespace}")
    check(len(text(obj.attrs.get("object_id", ""))) == 36, f"{obj.name}: no object_id")


def check_table(table, neurodata_type, namespace):
    typed(table, neurodata_type, namespace)
    check("description" in table.attrs, f"{table.name}: no description")
    typed(table["id"], "ElementIdentifiers", "hdmf-common")
    rows = table["id"].shape[0]
    for name in table.attrs["colnames"]:
        name = text(name)
        check(name in table, f"{table.name}: column {name} listed in colnames but absent")
        if name not in table:
            continue
        column = table[name]
        check(text(column.attrs.get("neurodata_type", "")) in ("VectorData", "DynamicTableRegion"),
              f"{column.name}: not VectorData")
        check("description" in column.attrs, f"{column.name}: no description")
        if name + "_index" in table:
            index = table[name + "_index"]
            typed(index, "VectorIndex", "hdmf-common")
            check(index.shape[0] == rows, f"{index.name}: {index.shape[0]} rows, table has {rows}")
            check(table.file[index.attrs["target"]] == column, f"{index.name}: target is not {column.name}")
            ends = index[()]
            check(len(ends) == 0 or (np.all(np.diff(ends.astype(np.int64)) >= 0) and ends[-1] == column.shape[0]),
                  f"{index.name}: not a ragged index of {column.name}")
        else:
            check(column.shape[0] == rows, f"{column.name}: {column.shape[0]} rows, table has {rows}")
    return rows


with h5py.File(nwb_path, "r") as f:
    typed(f, "NWBFile", "core")
    check(text(f.attrs["nwb_version"]).startswith("2."), "nwb_version is not 2.x")
    for name in ("file_create_date", "identifier", "session_description", "session_start_time",
                 "timestamps_reference_time"):
        check(name in f and isinstance(f[name], h5py.Dataset), f"required dataset /{name} missing")
    for name in ("acquisition", "analysis", "processing", "stimulus", "stimulus/presentation", "stimulus/templates",
                 "general", "general/devices", "general/extracellular_ephys", "units"):
        check(name in f and isinstance(f[name], h5py.Group), f"required group /{name} missing")
    check(text(f["session_start_time"][()])[:4].isdigit(), "session_start_time is not ISO 8601")

    devices = list(f["general/devices"].values())
    check(len(devices) == 1, "one Device expected")
    for device in devices:
        typed(device, "Device", "core")
    ephys = f["general/extracellular_ephys"]
    groups = {name: g for name, g in ephys.items() if name != "electrodes"}
    for group in groups.values():
        typed(group, "ElectrodeGroup", "core")
        check("description" in group.attrs and "location" in group.attrs, f"{group.name}: description/location")
        check(text(group["device"].attrs["neurodata_type"]) == "Device", f"{group.name}: device link")

    electrodes = ephys["electrodes"]
    n_channels = check_table(electrodes, "DynamicTable", "hdmf-common")
    for required in ("location", "group", "group_name"):
        check(required in electrodes, f"electrodes: required column {required} missing")
    positions = np.load(os.path.join(sort_dir, "channel_positions.npy"))
    shanks = np.load(os.path.join(sort_dir, "channel_shanks.npy"))
    check(n_channels == positions.shape[0], "electrodes: one row per channel")
    check(np.allclose(electrodes["rel_x"][()], positions[:, 0]) and
          np.allclose(electrodes["rel_y"][()], positions[:, 1]), "electrodes: positions differ from the Phy folder")
    for row, reference in enumerate(electrodes["group"][()]):
        group = f[reference]
        check(group.name == f"/general/extracellular_ephys/shank{shanks[row]}", f"electrode {row}: wrong group")
        check(text(electrodes["group_name"][row]) == f"shank{shanks[row]}", f"electrode {row}: wrong group_name")
    check(len(groups) == len(np.unique(shanks)), "one electrode group per shank")

    units = f["units"]
    n_units = check_table(units, "Units", "core")
    typed(units["electrodes"], "DynamicTableRegion", "hdmf-common")
    check(f[units["electrodes"].attrs["table"]] == electrodes, "units/electrodes: table is not the electrodes table")
    ids = units["id"][()]
    samples = np.load(os.path.join(sort_dir, "spike_times.npy"))
    clusters = np.load(os.path.join(sort_dir, "spike_clusters.npy"))
    rate = float([line.split("=")[1] for line in open(os.path.join(sort_dir, "params.py"))
                  if line.startswith("sample_rate")][0])
    check(set(np.unique(clusters)) <= set(ids), "units: a cluster of the Phy folder is missing")
    ends = units["spike_times_index"][()]
    times = units["spike_times"][()]
    for row, unit in enumerate(ids):
        start = ends[row - 1] if row else 0
        expected = samples[clusters == unit] / rate
        check(np.array_equal(times[start:ends[row]], expected), f"unit {unit}: spike times differ from the Phy folder")
    waveform_mean = units["waveform_mean"]
    check(waveform_mean.shape[0] == n_units and waveform_mean.ndim == 3, "units/waveform_mean: (units, samples, ch)")
    check(text(waveform_mean.attrs["unit"]) == "volts", "waveform_mean unit is not volts")
    # Units with spikes have a mean spike of tens to hundreds of uV; units without (a stream's unit that a later
    # calibration kept but never saw again) have none.
    counts = np.diff(np.concatenate([[0], ends.astype(np.int64)]))
    with_spikes = (ids > 0) & (counts > 0)
    peaks = np.nanmax(np.abs(waveform_mean[()][with_spikes]), axis=(1, 2))
    check(np.all((peaks > 10e-6) & (peaks < 2e-3)), "waveform_mean: not spikes in volts")
    check(np.all(np.isnan(waveform_mean[()][counts == 0])), "waveform_mean: a unit without spikes has a waveform")
    for path in glob.glob(os.path.join(sort_dir, "cluster_*.tsv")):
        if path.endswith("cluster_info.tsv"):
            continue
        lines = [line.rstrip("\n").split("\t") for line in open(path)]
        name = lines[0][1]
        check(name in units, f"units: column {name} of {os.path.basename(path)} missing")
        column = units[name][()]
        for cluster, value in lines[1:]:
            row = int(np.nonzero(ids == int(cluster))[0][0])
            stored = text(column[row]) if column.dtype.kind in "OS" else column[row]
            check(stored == value if isinstance(stored, str) else np.isclose(stored, float(value)),
                  f"units/{name}: cluster {cluster} holds {stored}, {os.path.basename(path)} says {value}")

    if raw_path:
        series = f["acquisition/ElectricalSeries"]
        typed(series, "ElectricalSeries", "core")
        data = series["data"]
        raw = np.memmap(raw_path, dtype=np.int16, mode="r").reshape(-1, n_channels)
        check(data.shape == raw.shape, f"ElectricalSeries data {data.shape} != recording {raw.shape}")
        check(data.chunks is not None and data.compression == "gzip", "ElectricalSeries data not chunked and gzip")
        for start in (0, raw.shape[0] // 2, raw.shape[0] - 100):
            check(np.array_equal(data[start:start + 100], raw[start:start + 100]), f"raw data differs at {start}")
        check(data.attrs["conversion"] > 0 and text(data.attrs["unit"]) == "volts", "data conversion/unit")
        check(np.isclose(series["starting_time"].attrs["rate"], rate), "starting_time rate")
        check(f[series["electrodes"].attrs["table"]] == electrodes, "ElectricalSeries electrodes table")
        check(series["electrodes"].shape[0] == n_channels, "ElectricalSeries: every channel")

for failure in failures[:30]:
    print("FAIL:", failure)
print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
