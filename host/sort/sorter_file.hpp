#pragma once
// A calibrated sorter saved to JSON (docs/FORMATS.md, sorter.json) and loaded again, so that later runs (offline
// `sort --sorter`, live `stream --sorter`) label spikes with the same units, unit ids and template ids.
#include "backend/detect_settings.hpp"
#include "probe/probe.hpp"
#include "sort/calibration.hpp"
#include "sort/sort_settings.hpp"

#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace spikeline::sort {

inline constexpr int kSorterFileVersion = 1;

/// What a sorter is valid for: the classifier was learnt on features of spikes detected with these settings, on this
/// probe and sample rate. Written into the file; on reading, the run's own context must match it.
struct SorterFileContext {
    int n_channels = 0;
    double sample_rate = 0;
    std::string probe_name;
    nlohmann::json detect_settings; ///< to_json(DetectSettings)
    nlohmann::json sort_settings;   ///< sort::to_json(SortSettings)
    /// The snippet geometry this run would use (make_sort_params). When set, read_sorter_file also requires the file's
    /// pre/post samples and snippet channels to equal it (they follow from the probe's contact positions).
    std::shared_ptr<const HwSortParams> geometry;
};

/// The context of a run on `probe` at `sample_rate` with these settings, geometry included. Throws InputError on
/// settings the hardware cannot represent (as make_detect_params and make_sort_params do).
SorterFileContext make_sorter_file_context(const probe::Probe& probe, double sample_rate, const DetectSettings& detect,
                                           const SortSettings& sort);

/// Writes the calibration (quantised classifier and host-side entries, units and noise) and its context as JSON,
/// atomically. Every number round-trips exactly.
void write_sorter_file(const Calibration& calibration, const SorterFileContext& context,
                       const std::filesystem::path& path);

/// Reads a sorter file and checks it against the run's context. Throws InputError naming the file and the problem
/// (not JSON, another format or version, a missing or out-of-range field, inconsistent entries) or the field of the
/// context that differs (channel count, sample rate, probe, a detection setting, the snippet window), with what to do.
/// The result gives the backend the same labels as the calibration that was written. text: when given, receives the
/// file's bytes (to pass them on unchanged).
Calibration read_sorter_file(const std::filesystem::path& path, const SorterFileContext& expected,
                             std::string* text = nullptr);

} // namespace spikeline::sort
