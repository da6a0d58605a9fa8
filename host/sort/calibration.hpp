#pragma once
// Host calibration of the sorter: from the snippets of a calibration window, a temporal PCA basis, clusters per peak
// channel (split while their feature distribution is bimodal, so the number of units need not be known), merging of
// clusters that are the same neuron seen on neighbouring channels, and the quantised classifier the L1 stage runs.
#include "backend/backend.hpp"
#include "probe/probe.hpp"
#include "sort/sort_settings.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace spikeline::sort {

/// One cluster of one peak channel: a classifier entry and a Phy template.
struct Entry {
    int template_id = 0;
    int unit = 0;
    int channel = 0;
    std::size_t n_members = 0;
    std::vector<double> centroid;     ///< features (n_values)
    double gate = 0;                  ///< squared feature distance
    std::vector<double> mean_snippet; ///< snippet_channels x width, Q4 input LSB
    double motion_um = 0;             ///< the motion estimate its spikes were seen at (0: none, or no motion)
};

struct Unit {
    int id = 0;
    int peak_channel = 0;
    double amplitude = 0;     ///< |mean snippet| at the peak of its largest entry, Q4 input LSB
    std::vector<int> entries; ///< indices into Calibration::entries
};

struct Calibration {
    std::shared_ptr<HwSortParams> params; ///< geometry, basis and classifier, ready for the backend
    std::vector<Entry> entries;
    std::vector<Unit> units;
    std::vector<double> channel_noise; ///< noise sigma per channel, Q4 input LSB (0: no snippet there)
    int width = 0;                     ///< pre + 1 + post
    std::size_t n_spikes = 0;          ///< snippets it learnt from
};

/// The probe's motion while the calibration window was recorded: entries are compared (for merging) after moving them
/// to the same displacement, and each entry records the displacement its spikes were seen at.
struct CalibrationMotion {
    const probe::Probe* probe = nullptr;
    std::vector<double> displacement_um; ///< per spike of the window: the motion estimate at its time and depth
};

/// Throws InputError unless data holds a snippet per spike for base's geometry and, with motion, a displacement per
/// spike and the probe.
void check_calibration_data(const HwSortParams& base, const SortOutput& data, const CalibrationMotion* motion);

/// Learns the classifier from the sorted output of a calibration window (spikes with snippets, e.g. from a backend
/// whose sorting stage ran with base's geometry and no entries). Template ids start at first_template_id; when
/// previous is given: units matching one of its units keep its id (matched first by the labels previous gave the
/// window's spikes, then by template distance below id_match_distance), and previous's units the window did not
/// find stay registered with their last templates, so a unit keeps its id and its labels through a quiet period
/// (not with settings.relearn_all: the data then holds every spike so far, and its units are the whole picture).
/// keep_basis: features on previous's basis (the backend's basis stays, only classifier entries change: the update can
/// be applied as table writes). Throws InputError when there are no spikes to learn from.
Calibration calibrate(const HwSortParams& base, const SortOutput& data, const SortSettings& settings,
                      int first_template_id = 0, const Calibration* previous = nullptr,
                      const CalibrationMotion* motion = nullptr, bool keep_basis = false);

/// A calibration with calibrate's basis and noise but no units (every spike unsorted): for a pass that only
/// collects snippets and learns its units later on that basis. Throws InputError when there are no spikes.
Calibration calibrate_basis(const HwSortParams& base, const SortOutput& data);

/// The temporal basis calibrate learns (top eigenvectors of the snippet rows' second moments), quantised into
/// params.basis.
void learn_basis(const SortOutput& data, int width, HwSortParams& params);

/// Noise sigma per channel (Q4 input LSB; 0 where no snippet row lies): median(|x|) / 0.6745 over the first and last
/// three samples of every snippet row.
std::vector<double> snippet_noise(const HwSortParams& params, const SortOutput& data, int width);

/// The classifier features of a mean snippet. Features are linear in the snippet: the mean of the features is the
/// features of the mean.
std::vector<double> centroid_of(const HwSortParams& params, const std::vector<double>& mean_snippet, int width);

/// Snippet rows shifted in time so that the first row's extremum (within +-3 samples of pre) lies at pre.
std::vector<double> aligned_on_first_row(const std::vector<double>& rows, int width, int pre);

/// An entry as the L1 classifier holds it (centroid rounded, gate saturated).
hw::ClassifierEntry quantise(const Entry& entry);

/// Normalised distance between two snippets' means on the channels they share, minimised over +-2 samples of shift:
/// |a - b|^2 / ((|a|^2 + |b|^2) / 2). 2 when they share no channel.
double template_distance(const HwSortParams& params, int channel_a, const std::vector<double>& a, int channel_b,
                         const std::vector<double>& b);

/// template_distance between entry a's mean snippet and b_snippet (entry b's, possibly moved) less what the noise of
/// two means adds to it on average: (1/n_a + 1/n_b) sigma^2 for each sample compared (sigma: channel_noise; n = 0, a
/// template: no noise), at least 0. Two clusters of one neuron of 10-15 spikes each were 0.08-0.11 apart by noise
/// alone, beyond merge_distance, and stayed apart as several units.
double distance_beyond_noise(const HwSortParams& params, const std::vector<double>& channel_noise, const Entry& a,
                             const std::vector<double>& b_snippet, const Entry& b);

/// Distance between the shapes of two snippets' means whatever their amplitudes, on the channels they share and
/// minimised over +-2 samples of shift: 1 - cos^2 of the angle between them (1 when they share no channel or point
/// opposite ways).
double shape_distance(const HwSortParams& params, int channel_a, const std::vector<double>& a, int channel_b,
                      const std::vector<double>& b);

/// Share of `followers` (sorted samples) that come min_lag..max_lag samples after one of `leaders` (sorted).
double share_following(const std::vector<std::uint64_t>& leaders, const std::vector<std::uint64_t>& followers,
                       std::uint64_t min_lag, std::uint64_t max_lag);

} // namespace spikeline::sort
