#pragma once
// Causal binning of spike trains into counts per unit, optional causal smoothing, and the kinematics targets of
// each bin.
#include "decode/spike_input.hpp"

#include <Eigen/Core>

#include <cstdint>
#include <string>
#include <vector>

namespace spikeline::decode {

enum class Smoothing { none, exponential, boxcar };

const char* to_string(Smoothing smoothing);
/// "none", "exponential" or "boxcar"; throws InputError otherwise.
Smoothing parse_smoothing(const std::string& text);

struct BinSettings {
    double bin_ms = 20.0;
    Smoothing smoothing = Smoothing::none;
    double smooth_ms = 0.0; ///< exponential: time constant; boxcar: window length (both over past bins)
};

/// Throws InputError unless the settings are usable at this sample rate.
void check_bin_settings(const BinSettings& settings, double sample_rate);

/// Bin length in samples: bin_ms at the sample rate, rounded to the nearest sample.
std::uint64_t bin_samples(double bin_ms, double sample_rate);

/// Spike counts, one column per bin (rows follow unit_ids): bin k counts spikes with k*bin <= time < (k+1)*bin,
/// so it is complete at the end of its own time span (causal). Spikes from n_bins*bin on are ignored. A label
/// that is not in unit_ids throws InputError (the spikes do not match the decoder's inputs).
Eigen::MatrixXd bin_counts(const SpikeTrains& spikes, const std::vector<std::int32_t>& unit_ids,
                           std::uint64_t bin_length, std::size_t n_bins);

/// Smooths every row in time using only the current and earlier bins. exponential: s_k = a s_(k-1) + (1 - a) c_k
/// with a = exp(-1 / width_bins); boxcar: the mean of the last round(width_bins) bins (bins before 0 count as 0).
void smooth_causal(Eigen::MatrixXd& binned, Smoothing smoothing, double width_bins);

/// Bins [first, end) whose centre lies within the kinematics' time span.
struct BinRange {
    std::size_t first = 0, end = 0;
    std::size_t size() const { return end > first ? end - first : 0; }
};
BinRange bins_with_kinematics(const Kinematics& kinematics, double bin_s);

/// Velocity (vx, vy) at the centre of each bin of range, linearly interpolated: 2 x range.size().
Eigen::MatrixXd velocity_at_bins(const Kinematics& kinematics, double bin_s, BinRange range);

} // namespace spikeline::decode
