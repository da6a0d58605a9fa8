#pragma once
// Writes a Phy / Kilosort "template-gui" folder incrementally: per-spike arrays are appended as spikes come, the
// templates, channel maps, cluster tables and params.py are written by finish(). Every file appears atomically.
//
// Clusters: 0 is "unsorted" (spikes no unit accepted, group "noise"); unit u is cluster u + 1.
// Templates: every classifier entry of every calibration is a template (its mean snippet on its peak channel's
// snippet channels, scaled to 1 at its peak; amplitudes.npy holds each spike's peak in uV); unsorted spikes on channel
// c use a unit-trough template on c. templates.npy is sparse (Kilosort's layout): kRows columns per template, whose
// channels template_ind.npy lists. Only templates with spikes are written, renumbered in order (phylib's loader
// expects that); templates_sorter_id.npy maps them back to the sorter's template ids.
#include "backend/backend.hpp"
#include "io/npy.hpp"
#include "io/recording.hpp"
#include "probe/probe.hpp"
#include "sort/calibration.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

namespace spikeline::sort {

/// Per-cluster quality metrics, accumulated as spikes come.
struct ClusterQuality {
    int cluster_id = 0;
    std::uint64_t n_spikes = 0;
    double firing_rate_hz = 0;
    double snr = 0;                 ///< template peak / noise sigma of the peak channel
    double isi_violation_ratio = 0; ///< share of inter-spike intervals below 1.5 ms
    /// share of equal bins of the recording holding a spike: 100 bins when the length was known in advance,
    /// 100-200 otherwise (see PhyWriter)
    double presence_ratio = 0;
    int peak_channel = -1;
    double amplitude_uv = 0; ///< template peak (uV, or LSB when the gain is unknown)
    std::string group;       ///< good (>= 20 spikes, ISI violations < 1 %, SNR >= 5), mua, or noise (cluster 0)
};

class PhyWriter {
public:
    /// dat_path: the recording params.py points at; expected_duration_s: its length if known in advance (a file),
    /// else 0 (a live stream): the presence ratio's bins are then 10 ms wide at first and double whenever 200 of
    /// them no longer cover the recording, so that 100-200 bins span it at the end, in bounded memory.
    PhyWriter(std::filesystem::path out_dir, const probe::Probe& probe, const io::RecordingInfo& info,
              std::shared_ptr<const HwSortParams> geometry, double expected_duration_s);

    /// The first template id the next calibration must use.
    int next_template_id() const { return static_cast<int>(templates_.size()); }
    /// Registers a calibration's templates and units (its template ids start at next_template_id()). The first
    /// calibration may start later (a loaded sorter's ids continue its own earlier calibrations): the ids below it
    /// become zero templates, so that spike_templates holds the sorter's template ids.
    void add_calibration(const Calibration& calibration);
    void append(const std::vector<hw::SortedSpike>& spikes);
    /// Appends artefacts (rows {sample, reference group, crossings}) to artifacts.npy.
    void append_artifacts(const std::vector<hw::ArtifactEvent>& artifacts);
    std::uint64_t n_artifacts() const { return n_artifacts_; }
    /// Hands the per-spike rows appended so far to the system (they survive a crash); throws WriteError.
    void flush();
    /// Writes the remaining files; `info` goes to spikeline_sort.json. recorded_s: the length actually written (for
    /// firing rates and the presence ratio; a stream may stop before its expected length).
    std::vector<ClusterQuality> finish(const nlohmann::json& info, double recorded_s);

    std::uint64_t n_spikes() const { return n_spikes_; }
    /// After finish(): the spikes the per-spike arrays hold (fewer than n_spikes() when a write failed).
    std::uint64_t n_spikes_kept() const { return n_spikes_kept_; }
    std::uint64_t n_unsorted() const { return n_unsorted_; }

private:
    struct Template {
        int channel = 0;
        std::vector<double> mean_snippet; ///< empty: zero template of an unsorted channel
    };
    struct Accumulator {
        std::uint64_t n = 0;
        std::uint64_t last = 0;
        std::uint64_t violations = 0;
        std::vector<bool> present;
    };

    int unsorted_template(int channel);
    /// The value a template is divided by to bring it to unit scale: |mean| at the peak sample of the peak channel.
    double peak_of(const std::vector<double>& mean_snippet) const;
    /// Phy template ids: the templates spikes used, numbered in order (-1: none); rewrites spike_templates.npy (its
    /// first `kept` rows) with them when some template went unused.
    std::vector<int> renumber_templates(std::size_t kept);
    /// Halves the presence resolution: bin i becomes bins 2i and 2i + 1.
    void coarsen_presence_bins();
    /// Presence bins per cluster: 100 of a fixed width, or room for 200 that grow with the recording.
    int presence_capacity() const;

    std::filesystem::path out_dir_;
    const probe::Probe& probe_;
    io::RecordingInfo info_;
    std::shared_ptr<const HwSortParams> geometry_;
    int width_;
    bool presence_bins_fixed_; ///< the length was known in advance: 100 bins of a fixed width
    double presence_bin_s_;
    double scale_;          ///< Q4 input LSB -> uV (or LSB)
    double pc0_sign_ = 1.0; ///< sign of the first PC feature in pc_features.npy (see add_calibration)
    std::vector<bool> template_used_;
    std::vector<Template> templates_;
    std::map<int, int> unsorted_templates_; ///< channel -> template id
    std::map<int, Unit> units_;             ///< latest calibration's view of each unit id
    std::map<int, double> unit_snr_;
    std::map<int, Accumulator> clusters_; ///< by cluster id
    std::uint64_t n_spikes_ = 0, n_unsorted_ = 0, n_spikes_kept_ = 0, n_artifacts_ = 0;
    bool calibrated_ = false; ///< a calibration was added (only the first may skip template ids)
    io::NpyAppendWriter<std::uint64_t> times_;
    io::NpyAppendWriter<std::int32_t> clusters_file_;
    io::NpyAppendWriter<std::int32_t> templates_file_;
    io::NpyAppendWriter<double> amplitudes_;
    io::NpyAppendWriter<float> pc_features_;
    io::NpyAppendWriter<std::int64_t> artifacts_;
};

} // namespace spikeline::sort
