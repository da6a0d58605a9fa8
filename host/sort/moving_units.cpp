#include "sort/moving_units.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>

#include <Eigen/Dense>

namespace spikeline::sort {
namespace {

constexpr int kRows = HwSortConfig::snippet_channels;

} // namespace

std::vector<double> move_snippet(const HwSortParams& params, const probe::Probe& probe, int channel,
                                 const std::vector<double>& mean_snippet, double from_um, double to_um) {
    if (std::abs(from_um - to_um) < 0.5)
        return mean_snippet;
    return move_snippet_to(params, probe, channel, mean_snippet, from_um, channel, to_um);
}

std::vector<double> move_snippet_to(const HwSortParams& params, const probe::Probe& probe, int channel,
                                    const std::vector<double>& mean_snippet, double from_um, int to_channel,
                                    double to_um) {
    const int width = params.pre + 1 + params.post;
    Kriging kriging(MovingUnitsSettings{}.kernel_um, width);
    kriging.add_snippet(params, probe, channel, mean_snippet, from_um);
    kriging.fit();
    std::vector<double> moved(mean_snippet.size(), 0.0);
    for (int k = 0; k < kRows; ++k) {
        const int ch = params.snippet_channels[to_channel][k];
        if (ch >= 0) {
            const probe::Contact& c = probe.contacts[static_cast<std::size_t>(ch)];
            kriging.at(c.x_um, c.y_um - to_um, &moved[static_cast<std::size_t>(k * width)]);
        }
    }
    return moved;
}

Eigen::MatrixXd move_snippet_map(const HwSortParams& params, const probe::Probe& probe, int channel, double from_um,
                                 int to_channel, double to_um) {
    // Kriging each source row's unit vector: the fitted weights are the inverse kernel matrix, and evaluating them at a
    // target row gives that row's coefficients.
    Kriging kriging(MovingUnitsSettings{}.kernel_um, kRows);
    for (int j = 0; j < kRows; ++j) {
        const int ch = params.snippet_channels[channel][j];
        if (ch < 0)
            continue;
        std::vector<double> unit(kRows, 0.0);
        unit[static_cast<std::size_t>(j)] = 1.0;
        const probe::Contact& c = probe.contacts[static_cast<std::size_t>(ch)];
        kriging.add(c.x_um, c.y_um - from_um, unit.data());
    }
    Eigen::MatrixXd map = Eigen::MatrixXd::Zero(kRows, kRows);
    if (kriging.empty())
        return map;
    kriging.fit();
    for (int k = 0; k < kRows; ++k) {
        const int ch = params.snippet_channels[to_channel][k];
        if (ch < 0)
            continue;
        const probe::Contact& c = probe.contacts[static_cast<std::size_t>(ch)];
        double row[kRows];
        kriging.at(c.x_um, c.y_um - to_um, row);
        for (int j = 0; j < kRows; ++j)
            map(k, j) = row[j];
    }
    return map;
}

std::vector<hw::TableWrite> table_writes(const HwSortParams& from, const HwSortParams& to, std::uint64_t sample) {
    auto same = [](const hw::ClassifierEntry& a, const hw::ClassifierEntry& b) {
        if (a.unit != b.unit || a.template_id != b.template_id || a.gate != b.gate)
            return false;
        for (int v = 0; v < HwSortConfig::n_values; ++v)
            if (a.centroid[v] != b.centroid[v])
                return false;
        return true;
    };
    std::vector<hw::TableWrite> writes;
    for (int c = 0; c < to.n_channels; ++c) {
        const int n = to.n_entries[c];
        bool wrote = false;
        for (int slot = 0; slot < n; ++slot)
            if (slot >= from.n_entries[c] || !same(from.entries[c][slot], to.entries[c][slot])) {
                writes.push_back({sample, c, slot, n, to.entries[c][slot]});
                wrote = true;
            }
        if (!wrote && n != from.n_entries[c])
            writes.push_back({sample, c, -1, n, {}});
    }
    return writes;
}

MovingUnits::MovingUnits(const Calibration& calibration, const probe::Probe& probe, const MovingUnitsSettings& settings,
                         std::unique_ptr<HwSortParams> recycled_table)
    : calibration_(calibration), probe_(probe), settings_(settings), table_(std::move(recycled_table)),
      moved_(calibration.units.size()), fits_(calibration.units.size()) {
    if (table_)
        *table_ = *calibration.params;
    else
        table_ = std::make_unique<HwSortParams>(*calibration.params);
    for (const Unit& unit : calibration.units) {
        std::vector<double> at;
        for (int e : unit.entries) {
            const Entry& entry = calibration.entries[static_cast<std::size_t>(e)];
            if (entry.n_members > 0)
                at.push_back(entry.motion_um);
        }
        learnt_at_.push_back(at.empty() ? std::vector<double>{0.0} : at);
    }
}

MovingUnits::~MovingUnits() = default;

void MovingUnits::render_unit(std::size_t u, double displacement) {
    const Unit& unit = calibration_.units[u];
    const HwSortParams& params = *calibration_.params;
    const int width = calibration_.width;
    MovedUnit& out = moved_[u];
    out.rendered_at = displacement;
    out.entries.clear();
    out.channels.clear();
    out.shares.clear();

    // What the unit looked like where its clusters were learnt (clustered entries only: the others are derived),
    // fitted once per calibration.
    const Entry* main = nullptr;
    for (int e : unit.entries)
        if (!main && calibration_.entries[static_cast<std::size_t>(e)].n_members > 0)
            main = &calibration_.entries[static_cast<std::size_t>(e)];
    if (!main)
        return;
    if (!fits_[u]) {
        fits_[u] = std::make_unique<Kriging>(settings_.kernel_um, width);
        for (int e : unit.entries) {
            const Entry& entry = calibration_.entries[static_cast<std::size_t>(e)];
            if (entry.n_members > 0)
                fits_[u]->add_snippet(params, probe_, entry.channel, entry.mean_snippet, entry.motion_um);
        }
        fits_[u]->fit();
    }
    const Kriging& kriging = *fits_[u];

    // Where it is now: the waveform on every contact of its shank near a point it was seen at; entries on the contact
    // it now peaks on, its nearest contacts and wherever else it is nearly as large, as the calibration registers it.
    const int shank = probe_.contacts[static_cast<std::size_t>(unit.peak_channel)].shank;
    const Footprint footprint = kriged_footprint(kriging, probe_, shank, displacement, params.pre, width);
    for (const int channel : registration_contacts(params, footprint, settings_.register_share)) {
        const std::vector<double> rows = footprint_rows(params, footprint, channel, width);
        double share = 0; // the unit's amplitude on the channel over its peak amplitude
        for (std::size_t i = 0; i < footprint.waveforms.size(); ++i)
            if (footprint.waveforms[i].first == channel)
                share = footprint.amplitudes[i] / footprint.peak_amplitude;
        Entry entry;
        entry.unit = unit.id;
        entry.template_id = main->template_id;
        for (int e : unit.entries) // the template learnt on this contact, when there is one
            if (calibration_.entries[static_cast<std::size_t>(e)].channel == channel)
                entry.template_id = calibration_.entries[static_cast<std::size_t>(e)].template_id;
        entry.gate = main->gate;
        entry.centroid = centroid_of(params, aligned_on_first_row(rows, width, params.pre), width);
        out.entries.push_back(quantise(entry));
        out.channels.push_back(channel);
        out.shares.push_back(share);
    }
}

const HwSortParams& MovingUnits::render(const std::function<double(int, double)>& displacement) {
    const HwSortParams& calibrated = *calibration_.params;
    units_moved_ = 0;
    for (std::size_t u = 0; u < calibration_.units.size(); ++u) {
        const Unit& unit = calibration_.units[u];
        const probe::Contact& peak = probe_.contacts[static_cast<std::size_t>(unit.peak_channel)];
        const double d = displacement(peak.shank, peak.y_um);
        MovedUnit& m = moved_[u];
        // Calibrated entries serve only while every cluster of the unit was learnt near where it is now; a moved unit
        // returns to them within half the tolerance, so that estimate noise does not toggle it back and forth.
        const double tolerance = m.moved ? settings_.tolerance_um / 2 : settings_.tolerance_um;
        bool moved = false;
        for (double at : learnt_at_[u])
            moved |= std::abs(d - at) >= tolerance;
        if (moved && (!m.moved || std::abs(d - m.rendered_at) >= settings_.step_um))
            render_unit(u, d);
        m.moved = moved;
        units_moved_ += moved;
    }
    // Calibrated entries of units that stayed, in the calibration's order (so that with no motion the table is the
    // calibration's), then the rendered entries of units that moved.
    HwSortParams& table = *table_;
    std::fill(std::begin(table.n_entries), std::end(table.n_entries), std::uint8_t{0});
    std::vector<bool> unit_moved(calibration_.units.size(), false);
    std::vector<int> index_of_id;
    for (std::size_t u = 0; u < calibration_.units.size(); ++u) {
        const int id = calibration_.units[u].id;
        if (id >= static_cast<int>(index_of_id.size()))
            index_of_id.resize(static_cast<std::size_t>(id) + 1, -1);
        index_of_id[static_cast<std::size_t>(id)] = static_cast<int>(u);
        unit_moved[u] = moved_[u].moved;
    }
    for (int c = 0; c < calibrated.n_channels; ++c)
        for (int i = 0; i < calibrated.n_entries[c]; ++i) {
            const hw::ClassifierEntry& q = calibrated.entries[c][i];
            const int u = q.unit >= 0 && q.unit < static_cast<int>(index_of_id.size())
                              ? index_of_id[static_cast<std::size_t>(q.unit)]
                              : -1;
            if (u >= 0 && unit_moved[static_cast<std::size_t>(u)])
                continue;
            table.entries[c][table.n_entries[c]++] = q;
        }
    // Where a channel has no room for all of them, the entries where a unit is largest relative to its peak go first.
    std::vector<std::tuple<double, std::size_t, std::size_t>> rendered; // (share, unit, entry), a few hundred
    for (std::size_t u = 0; u < calibration_.units.size(); ++u)
        if (moved_[u].moved)
            for (std::size_t i = 0; i < moved_[u].entries.size(); ++i)
                rendered.emplace_back(moved_[u].shares[i], u, i);
    std::stable_sort(rendered.begin(), rendered.end(),
                     [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
    for (const auto& [share, u, i] : rendered) {
        const int c = moved_[u].channels[i];
        if (table.n_entries[c] == HwSortConfig::max_entries) {
            ++entries_dropped_;
            continue;
        }
        table.entries[c][table.n_entries[c]++] = moved_[u].entries[i];
    }
    return table;
}

} // namespace spikeline::sort
