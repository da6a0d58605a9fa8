#pragma once
// Units that follow the probe's motion. Each calibration entry was learnt at a known displacement (the motion
// estimate over its spikes); moved to another displacement, a unit's mean snippets are re-sampled in depth by kriging
// (Gaussian-kernel interpolation over the contacts and displacements they were seen at), and its classifier entries
// are rebuilt on the contacts where it now peaks. The host turns each new motion estimate into the table writes
// (hw::TableWrite) that take the kernel's classifier from its current state to the rendered one.
#include "probe/probe.hpp"
#include "sort/calibration.hpp"
#include "sort/kriging.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <Eigen/Dense>

namespace spikeline::sort {

/// A mean snippet (rows: `channel`'s snippet channels) seen at displacement from_um, re-sampled at to_um on the same
/// rows. Unchanged when the two are within 0.5 um.
std::vector<double> move_snippet(const HwSortParams& params, const probe::Probe& probe, int channel,
                                 const std::vector<double>& mean_snippet, double from_um, double to_um);

/// The same, seen on the rows of another channel: a snippet on `channel`'s rows at from_um, re-sampled on
/// `to_channel`'s rows at to_um.
std::vector<double> move_snippet_to(const HwSortParams& params, const probe::Probe& probe, int channel,
                                    const std::vector<double>& snippet, double from_um, int to_channel, double to_um);

/// move_snippet_to as the linear map it is: moved row k = sum over j of map(k, j) x row j (snippet_channels rows).
Eigen::MatrixXd move_snippet_map(const HwSortParams& params, const probe::Probe& probe, int channel, double from_um,
                                 int to_channel, double to_um);

/// Writes that take table `from` to table `to` (channels whose entries differ), applying from `sample` on.
std::vector<hw::TableWrite> table_writes(const HwSortParams& from, const HwSortParams& to, std::uint64_t sample);

struct MovingUnitsSettings {
    double tolerance_um = 3.0; ///< a unit within this of the displacement it was learnt at keeps its entries
    double step_um = 2.0;      ///< a moved unit is rendered again when its displacement changed by this much
    double kernel_um = 30.0;   ///< kriging kernel width (sigma)
    double register_share = kRegisterShare; ///< see registration_contacts
};

class MovingUnits {
public:
    /// calibration and probe must outlive it. recycled_table: the table of an earlier MovingUnits (release_table) to
    /// fill instead of allocating one, so that following a new calibration touches no fresh memory on a live stream.
    MovingUnits(const Calibration& calibration, const probe::Probe& probe, const MovingUnitsSettings& settings = {},
                std::unique_ptr<HwSortParams> recycled_table = nullptr);
    ~MovingUnits();

    /// Gives up the table for the next MovingUnits; this one may then only be destroyed.
    std::unique_ptr<HwSortParams> release_table() { return std::move(table_); }

    /// The classifier for a displacement field (shank, depth um) -> um. Units that moved less than the tolerance
    /// keep their calibrated entries, so with no motion this is the calibration's own table.
    const HwSortParams& render(const std::function<double(int, double)>& displacement);

    const HwSortParams& table() const { return *table_; }
    int units_moved() const { return units_moved_; }
    std::uint64_t entries_dropped() const { return entries_dropped_; } ///< rendered entries on a full channel

private:
    struct MovedUnit {
        bool moved = false;
        double rendered_at = 0;
        std::vector<hw::ClassifierEntry> entries;
        std::vector<int> channels;
        std::vector<double> shares; ///< per entry: the unit's amplitude on its channel over its peak amplitude
    };

    void render_unit(std::size_t u, double displacement);

    const Calibration& calibration_;
    const probe::Probe& probe_;
    MovingUnitsSettings settings_;
    std::unique_ptr<HwSortParams> table_;
    std::vector<MovedUnit> moved_;
    std::vector<std::unique_ptr<Kriging>> fits_; ///< per unit, made when it first moves
    std::vector<std::vector<double>> learnt_at_; ///< per unit: the displacements its clusters were learnt at
    int units_moved_ = 0;
    std::uint64_t entries_dropped_ = 0;
};

} // namespace spikeline::sort
