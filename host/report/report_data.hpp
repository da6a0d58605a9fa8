#pragma once
// The data of `spikeline report`: a sort folder (and optionally its ground truth) reduced to what the HTML page
// draws — per-unit summaries and compact binary arrays (base64), a subsampled drift map — so that 1000 units and an
// hour of recording stay well under 25 MB.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace spikeline::report {

struct ReportOptions {
    std::filesystem::path ground_truth_dir; ///< empty: no accuracy table
    std::size_t max_drift_spikes = 100000;  ///< spikes drawn in the drift map (evenly subsampled)
    std::size_t max_amplitude_points = 300; ///< points per unit in the amplitude-over-time plot
    int isi_bins = 100;                     ///< ISI histogram bins of isi_bin_ms
    double isi_bin_ms = 0.5;
    int rate_bins = 120; ///< firing-rate-over-time bins over the recording (at least 1 s each)
};

/// Reads SORT_DIR (spike_times, spike_clusters, spike_templates, amplitudes, templates, template_ind,
/// channel_positions, cluster_info.tsv, spikeline_sort.json; pc_features and motion files when present) and returns
/// the report's data as JSON (docs/FORMATS.md, "spikeline report"). Throws InputError naming a missing or
/// inconsistent file.
nlohmann::json build_report_data(const std::filesystem::path& sort_dir, const ReportOptions& options);

/// Standard base64 (RFC 4648, with padding) of raw bytes: how the page receives typed arrays.
std::string base64(const void* data, std::size_t size);
template <class T> std::string base64(const std::vector<T>& values) {
    return base64(values.data(), values.size() * sizeof(T));
}

} // namespace spikeline::report
