#pragma once
// Waveforms interpolated over the probe plane: what a unit looks like on contacts (or at displacements) its clusters
// were not learnt on.
#include "probe/probe.hpp"
#include "sort/calibration.hpp"

#include <utility>
#include <vector>

#include <Eigen/Dense>

namespace spikeline::sort {

/// Waveforms known at points of the tissue's frame (x, depth - displacement), interpolated elsewhere with a Gaussian
/// kernel (simple kriging with a zero prior: far from every known point the waveform fades to 0, as a unit's
/// footprint does).
class Kriging {
public:
    Kriging(double kernel_um, int width) : sigma_(kernel_um), width_(width) {}

    /// A waveform of `width` values at (x, y); the same point seen twice is averaged.
    void add(double x, double y, const double* values);
    /// The rows of a snippet on `channel`'s snippet channels, seen at `displacement` um.
    void add_snippet(const HwSortParams& params, const probe::Probe& probe, int channel,
                     const std::vector<double>& rows, double displacement);

    bool empty() const { return xs_.empty(); }
    /// Whether depth y is within reach (2.5 kernel widths) of the known points' depths.
    bool within_reach(double y) const {
        return !ys_.empty() && y > y_low_ - 2.5 * sigma_ && y < y_high_ + 2.5 * sigma_;
    }

    /// Solves for the weights; call after the last add() (nothing known: every waveform is 0).
    void fit();

    /// The waveform at (x, y) into out (width values); returns the largest kernel value to a known point.
    double at(double x, double y, double* out) const;

private:
    double kernel(double dx, double dy) const;

    double sigma_;
    int width_;
    std::vector<double> xs_, ys_, sums_;
    std::vector<int> counts_;
    Eigen::MatrixXd weights_;
    double y_low_ = 0, y_high_ = 0; ///< depth range of the known points
};

/// A unit's waveform kriged onto the contacts of one shank at a displacement.
struct Footprint {
    std::vector<std::pair<int, std::vector<double>>> waveforms; ///< (channel, waveform) on the contacts within reach
    std::vector<double> amplitudes; ///< per waveform: the largest |value| within 3 samples of the trough sample
    int peak = -1;                  ///< the channel of the largest amplitude (-1: none within reach)
    double peak_amplitude = 0;
};

Footprint kriged_footprint(const Kriging& kriging, const probe::Probe& probe, int shank, double displacement_um,
                           int pre, int width);

/// The footprint on `channel`'s snippet rows (rows of contacts beyond its reach 0), not aligned.
std::vector<double> footprint_rows(const HwSortParams& params, const Footprint& footprint, int channel, int width);

/// Share of its peak amplitude from which a unit is registered on a contact beyond its peak's nearest seven. A
/// footprint 20-25 um off a Neuropixels 1.0 layout gives such a contact at most 0.63-0.74 of the peak; 0.6 and 0.75
/// sorted 16 recordings alike (docs/ACCURACY.md, stop 27).
constexpr double kRegisterShare = 0.6;

/// The contacts a unit is registered on: peak_channel's snippet channels (the footprint's peak when -1), then every
/// other contact where its footprint reaches `share` of the peak amplitude (a spike peaks there when noise tips the
/// balance; on a staggered layout such a contact can lie beyond the peak's seven nearest).
std::vector<int> registration_contacts(const HwSortParams& params, const Footprint& footprint, double share,
                                       int peak_channel = -1);

} // namespace spikeline::sort
