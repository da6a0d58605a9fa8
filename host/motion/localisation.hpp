#pragma once
// Where along the shank a spike came from, from the trough amplitudes on its snippet's contacts.
#include "backend/backend.hpp"
#include "probe/probe.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace spikeline::motion {

/// A spike's position: shank and depth (um) on the probe, amplitude (Q4 LSB).
struct SpikePosition {
    int shank = 0;
    double y_um = 0;
    double amplitude = 0;
};

/// Localises spikes by fitting a footprint to their trough amplitudes (largest |x| within 2 samples of the aligned
/// peak) on the snippet's contacts of the peak's shank: a_k = A (|s - c_k|^2 + w^2)^(-p/2) for a source at s in the
/// probe plane, A fitted by least squares, s and the shape (p = 1: a point source w = 10 / 25 / 50 um off the probe;
/// p = 2: a footprint w = 20 / 35 / 50 / 70 um wide) searched on a grid around the peak contact (x +-40 um in 8 um
/// steps, y +-48 um in 4 um steps), the depth refined between grid points by a parabola through the best fit and its
/// neighbours along y. The centre of mass of the amplitudes it replaced leans towards the contacts laterally nearest
/// the source: on a staggered layout (Neuropixels 1.0, x alternating every row) a unit moved by one row looked 6-10 um
/// further or nearer than it was, and the motion estimate followed (docs/ACCURACY.md).
/// The grid's model amplitudes depend only on the contacts' offsets from the peak contact: they are computed once per
/// pattern of offsets when the Localiser is made (a handful on a regular probe, at most one per channel: 62 KB each)
/// and reused, so a spike costs ~15 000 multiply-adds in 16-wide vectors.
class Localiser {
public:
    Localiser(std::shared_ptr<const HwSortParams> geometry, const probe::Probe& probe);

    /// snippet: snippet_channels x (pre + 1 + post) values (Q4 LSB), as the sorter extracted it for `event`.
    SpikePosition locate(const SpikeEvent& event, const std::int32_t* snippet);

private:
    struct Contacts {
        int n = 0;
        double x[HwSortConfig::snippet_channels] = {}; ///< um from the peak contact
        double y[HwSortConfig::snippet_channels] = {};
        int row[HwSortConfig::snippet_channels] = {}; ///< snippet row of each contact
    };
    /// The snippet rows of a peak channel on its shank, as offsets from it.
    Contacts contacts_of(int channel) const;
    /// Model amplitudes of these contacts at each grid point, scaled to unit norm per point: [contact][point].
    static std::vector<float> model_table(const Contacts& contacts);

    std::shared_ptr<const HwSortParams> geometry_;
    std::vector<probe::Contact> contacts_;
    std::vector<int> pattern_index_;         ///< per channel, into models_ (-1: fewer than two contacts)
    std::vector<std::vector<float>> models_; ///< model_table of each pattern of offsets
    std::vector<float> quality_;             ///< scratch: each grid point's fit
};

} // namespace spikeline::motion
