#include "sort/kriging.hpp"

#include <algorithm>
#include <cmath>

namespace spikeline::sort {

void Kriging::add(double x, double y, const double* values) {
    for (std::size_t i = 0; i < xs_.size(); ++i)
        if (std::abs(xs_[i] - x) < 0.5 && std::abs(ys_[i] - y) < 0.5) {
            for (int s = 0; s < width_; ++s)
                sums_[i * static_cast<std::size_t>(width_) + static_cast<std::size_t>(s)] += values[s];
            ++counts_[i];
            return;
        }
    xs_.push_back(x);
    ys_.push_back(y);
    sums_.insert(sums_.end(), values, values + width_);
    counts_.push_back(1);
}

void Kriging::add_snippet(const HwSortParams& params, const probe::Probe& probe, int channel,
                          const std::vector<double>& rows, double displacement) {
    for (int k = 0; k < HwSortConfig::snippet_channels; ++k) {
        const int ch = params.snippet_channels[channel][k];
        if (ch < 0)
            continue;
        const probe::Contact& c = probe.contacts[static_cast<std::size_t>(ch)];
        add(c.x_um, c.y_um - displacement, &rows[static_cast<std::size_t>(k * width_)]);
    }
}

void Kriging::fit() {
    if (xs_.empty())
        return;
    const auto n = static_cast<Eigen::Index>(xs_.size());
    Eigen::MatrixXd k(n, n);
    for (Eigen::Index i = 0; i < n; ++i)
        for (Eigen::Index j = 0; j < n; ++j)
            k(i, j) = kernel(xs_[static_cast<std::size_t>(i)] - xs_[static_cast<std::size_t>(j)],
                             ys_[static_cast<std::size_t>(i)] - ys_[static_cast<std::size_t>(j)]) +
                      (i == j ? 1e-3 : 0.0);
    Eigen::MatrixXd v(n, width_);
    for (Eigen::Index i = 0; i < n; ++i)
        for (int s = 0; s < width_; ++s)
            v(i, s) =
                sums_[static_cast<std::size_t>(i) * static_cast<std::size_t>(width_) + static_cast<std::size_t>(s)] /
                counts_[static_cast<std::size_t>(i)];
    weights_ = k.ldlt().solve(v);
    y_low_ = *std::min_element(ys_.begin(), ys_.end());
    y_high_ = *std::max_element(ys_.begin(), ys_.end());
}

double Kriging::at(double x, double y, double* out) const {
    std::fill(out, out + width_, 0.0);
    double nearest = 0;
    for (std::size_t i = 0; i < xs_.size(); ++i) {
        const double w = kernel(x - xs_[i], y - ys_[i]);
        nearest = std::max(nearest, w);
        if (w < 1e-6)
            continue;
        for (int s = 0; s < width_; ++s)
            out[s] += w * weights_(static_cast<Eigen::Index>(i), s);
    }
    return nearest;
}

double Kriging::kernel(double dx, double dy) const {
    return std::exp(-(dx * dx + dy * dy) / (2 * sigma_ * sigma_));
}

Footprint kriged_footprint(const Kriging& kriging, const probe::Probe& probe, int shank, double displacement_um,
                           int pre, int width) {
    Footprint footprint;
    std::vector<double> row(static_cast<std::size_t>(width));
    for (std::size_t c = 0; c < probe.contacts.size(); ++c) {
        const probe::Contact& contact = probe.contacts[c];
        if (contact.shank != shank || contact.excluded || !kriging.within_reach(contact.y_um - displacement_um))
            continue;
        if (kriging.at(contact.x_um, contact.y_um - displacement_um, row.data()) < 0.05) // beyond ~2.5 kernel widths
            continue;
        double amplitude = 0;
        for (int s = std::max(0, pre - 3); s <= std::min(width - 1, pre + 3); ++s)
            amplitude = std::max(amplitude, std::abs(row[static_cast<std::size_t>(s)]));
        if (amplitude > footprint.peak_amplitude) {
            footprint.peak_amplitude = amplitude;
            footprint.peak = static_cast<int>(c);
        }
        footprint.waveforms.emplace_back(static_cast<int>(c), row);
        footprint.amplitudes.push_back(amplitude);
    }
    return footprint;
}

std::vector<double> footprint_rows(const HwSortParams& params, const Footprint& footprint, int channel, int width) {
    std::vector<double> rows(static_cast<std::size_t>(HwSortConfig::snippet_channels * width), 0.0);
    for (int k = 0; k < HwSortConfig::snippet_channels; ++k)
        for (const auto& [contact, waveform] : footprint.waveforms)
            if (contact == params.snippet_channels[channel][k])
                std::copy(waveform.begin(), waveform.end(), rows.begin() + static_cast<std::ptrdiff_t>(k * width));
    return rows;
}

std::vector<int> registration_contacts(const HwSortParams& params, const Footprint& footprint, double share,
                                       int peak_channel) {
    std::vector<int> contacts;
    const int peak = peak_channel >= 0 ? peak_channel : footprint.peak;
    if (peak < 0)
        return contacts;
    for (int k = 0; k < HwSortConfig::snippet_channels; ++k)
        if (const int ch = params.snippet_channels[peak][k]; ch >= 0)
            contacts.push_back(ch);
    for (std::size_t i = 0; i < footprint.waveforms.size(); ++i) {
        const int ch = footprint.waveforms[i].first;
        if (footprint.peak_amplitude > 0 && footprint.amplitudes[i] >= share * footprint.peak_amplitude &&
            std::find(contacts.begin(), contacts.end(), ch) == contacts.end())
            contacts.push_back(ch);
    }
    return contacts;
}

} // namespace spikeline::sort
