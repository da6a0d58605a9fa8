#include "motion/localisation.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <map>
#include <utility>

namespace spikeline::motion {
namespace {

constexpr int kRows = HwSortConfig::snippet_channels;

// Footprint shapes: amplitude (d^2 + w^2)^(-p / 2) at distance d in the probe plane. p = 1 is a point source w off
// the probe; p = 2 a footprint with a flat top about w wide that falls off as the square of the distance beyond it:
// wide footprints fitted with p = 1 alone looked up to 7 um off.
struct Shape {
    double power = 1, width_um = 10;
};
constexpr Shape kShapes[] = {{1, 10}, {1, 25}, {1, 50}, {2, 20}, {2, 35}, {2, 50}, {2, 70}};
constexpr int kShapeCount = static_cast<int>(std::size(kShapes));
// The grid around the peak contact (um): the trough's contact is within a row or two of the source.
constexpr double kLateralReachUm = 40.0, kLateralStepUm = 8.0;
constexpr double kAxialReachUm = 48.0, kAxialStepUm = 4.0;
constexpr int kLateral = static_cast<int>(2 * kLateralReachUm / kLateralStepUm) + 1; // 11
constexpr int kAxial = static_cast<int>(2 * kAxialReachUm / kAxialStepUm) + 1;       // 25
constexpr int kGridPoints = kShapeCount * kLateral * kAxial;
constexpr int kLanes = 16;                                                  // of the search's vectors
using Floats = float __attribute__((vector_size(kLanes * sizeof(float))));  // GCC's vector extension
constexpr int kPaddedPoints = (kGridPoints + kLanes - 1) / kLanes * kLanes; // padded with all-zero models
struct GridPoint {
    double x = 0, y = 0;
    Shape shape;
};

GridPoint grid_point(int g) {
    const int axial = g % kAxial, lateral = (g / kAxial) % kLateral, shape = g / (kAxial * kLateral);
    return {-kLateralReachUm + lateral * kLateralStepUm, -kAxialReachUm + axial * kAxialStepUm, kShapes[shape]};
}

} // namespace

Localiser::Localiser(std::shared_ptr<const HwSortParams> geometry, const probe::Probe& probe)
    : geometry_(std::move(geometry)), contacts_(probe.contacts), pattern_index_(probe.contacts.size(), -1),
      quality_(kPaddedPoints) {
    // Every table before any spike (a live stream then allocates nothing here), one per pattern of offsets (in
    // 1/100 um): peak contacts whose snippet contacts lie alike around them share it.
    std::map<std::vector<long long>, int> by_offsets;
    for (int channel = 0; channel < static_cast<int>(contacts_.size()); ++channel) {
        const Contacts contacts = contacts_of(channel);
        if (contacts.n < 2)
            continue;
        std::vector<long long> key;
        for (int k = 0; k < contacts.n; ++k)
            key.insert(key.end(),
                       {contacts.row[k], std::llround(contacts.x[k] * 100), std::llround(contacts.y[k] * 100)});
        const auto [at, added] = by_offsets.try_emplace(std::move(key), static_cast<int>(models_.size()));
        if (added)
            models_.push_back(model_table(contacts));
        pattern_index_[static_cast<std::size_t>(channel)] = at->second;
    }
}

Localiser::Contacts Localiser::contacts_of(int channel) const {
    const probe::Contact& peak = contacts_[static_cast<std::size_t>(channel)];
    Contacts contacts;
    for (int k = 0; k < kRows; ++k) {
        const int ch = geometry_->snippet_channels[channel][k];
        if (ch < 0 || contacts_[static_cast<std::size_t>(ch)].shank != peak.shank)
            continue;
        const probe::Contact& contact = contacts_[static_cast<std::size_t>(ch)];
        contacts.x[contacts.n] = contact.x_um - peak.x_um;
        contacts.y[contacts.n] = contact.y_um - peak.y_um;
        contacts.row[contacts.n] = k;
        ++contacts.n;
    }
    return contacts;
}

std::vector<float> Localiser::model_table(const Contacts& contacts) {
    std::vector<float> model(static_cast<std::size_t>(contacts.n * kPaddedPoints), 0.0f);
    for (int g = 0; g < kGridPoints; ++g) {
        const GridPoint p = grid_point(g);
        double value[kRows];
        double squares = 0;
        for (int k = 0; k < contacts.n; ++k) {
            const double dx = p.x - contacts.x[k], dy = p.y - contacts.y[k];
            value[k] = std::pow(dx * dx + dy * dy + p.shape.width_um * p.shape.width_um, -p.shape.power / 2);
            squares += value[k] * value[k];
        }
        for (int k = 0; k < contacts.n; ++k)
            model[static_cast<std::size_t>(k * kPaddedPoints + g)] = static_cast<float>(value[k] / std::sqrt(squares));
    }
    return model;
}

SpikePosition Localiser::locate(const SpikeEvent& event, const std::int32_t* snippet) {
    const HwSortParams& geometry = *geometry_;
    const int width = geometry.pre + 1 + geometry.post;
    const probe::Contact& peak = contacts_[static_cast<std::size_t>(event.channel)];
    SpikePosition position{peak.shank, peak.y_um, 0};
    const Contacts contacts = contacts_of(event.channel);
    float amplitude[kRows] = {}; // of contacts' contacts, in their order
    for (int i = 0; i < contacts.n; ++i) {
        const int k = contacts.row[i];
        double largest = 0;
        for (int s = std::max(0, geometry.pre - 2); s <= std::min(width - 1, geometry.pre + 2); ++s)
            largest = std::max(largest, std::abs(static_cast<double>(snippet[k * width + s])));
        if (k == 0)
            position.amplitude = largest;
        amplitude[i] = static_cast<float>(largest);
    }
    const int index = pattern_index_[static_cast<std::size_t>(event.channel)];
    if (index < 0)
        return position; // fewer than two contacts: nothing says where along them the source is
    const std::vector<float>& models = models_[static_cast<std::size_t>(index)];
    // The fit's quality at each grid point, model . amplitudes (the residual is |a|^2 minus its square), 16 points at
    // a time over every contact, and the largest lane by lane: vector instructions, where one running maximum would be
    // a chain of dependent compares.
    float* quality = quality_.data();
    Floats best_lanes = {};
    for (int g = 0; g < kPaddedPoints; g += kLanes) {
        Floats sum = {};
        for (int k = 0; k < contacts.n; ++k) {
            Floats model;
            std::memcpy(&model, &models[static_cast<std::size_t>(k * kPaddedPoints + g)], sizeof model);
            sum += amplitude[k] * model;
        }
        std::memcpy(quality + g, &sum, sizeof sum);
        best_lanes = best_lanes > sum ? best_lanes : sum;
    }
    float lane_best[kLanes];
    std::memcpy(lane_best, &best_lanes, sizeof lane_best);
    const float top = *std::max_element(lane_best, lane_best + kLanes);
    if (!(top > 0))
        return position; // no amplitude anywhere
    const int best = static_cast<int>(std::find(quality, quality + kGridPoints, top) - quality);
    // Between grid points along y: the vertex of the parabola through the best and its two neighbours.
    double y = grid_point(best).y;
    const int axial = best % kAxial;
    if (axial > 0 && axial < kAxial - 1) {
        const double below = quality[best - 1], at = quality[best], above = quality[best + 1];
        const double curvature = below - 2 * at + above;
        if (curvature < 0)
            y += 0.5 * (below - above) / curvature * kAxialStepUm;
    }
    position.y_um = peak.y_um + y;
    return position;
}

} // namespace spikeline::motion
