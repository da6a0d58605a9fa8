#include "sim/units.hpp"

#include "sim/behavior.hpp"
#include "sim/waveform.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace spikeline::sim {
namespace {

// Times in ms, distances in um.
constexpr double kWideningPer100Um = 0.3;
constexpr double kDelayMsPerUm = 0.001;      // 0.1 ms per 100 um of propagation
constexpr double kFootprintRadiusInD0 = 4.5; // footprint is tapered to zero at this multiple of d0
constexpr double kColumnMarginUm = 15.0;
constexpr double kWideFootprintShare = 0.2; // units whose footprint reaches 100-150 um (d0 40-60 um)

} // namespace

FootprintEntry footprint_at(const UnitModel& unit, const probe::Probe& probe, int channel, double y_offset,
                            double sample_rate) {
    const probe::Contact& contact = probe.contacts[static_cast<std::size_t>(channel)];
    const double dx = contact.x_um - unit.x_um;
    const double dy = contact.y_um - (unit.y_um + y_offset);
    const double distance = std::sqrt(dx * dx + dy * dy + unit.z_um * unit.z_um);
    const double scaled_x = dx / unit.lateral_scale;
    const double scaled_y = dy / (dy > 0 ? unit.up_scale : unit.down_scale);
    const double scaled = std::sqrt(scaled_x * scaled_x + scaled_y * scaled_y + unit.z_um * unit.z_um);
    FootprintEntry entry;
    entry.channel = channel;
    if (scaled >= unit.radius_um)
        return entry;
    // Lorentzian-like decay of the scaled distance, shifted so it reaches zero smoothly at the footprint radius.
    // Delays and widening follow the physical distance.
    const double at_edge = 1.0 / (1.0 + std::pow(unit.radius_um / unit.d0_um, 2));
    const double decay = 1.0 / (1.0 + std::pow(scaled / unit.d0_um, 2));
    entry.gain = static_cast<float>((decay - at_edge) / (1.0 - at_edge));
    const double beyond_soma = distance - unit.z_um;
    entry.delay = static_cast<float>(std::min(beyond_soma * kDelayMsPerUm, kMaxDelayMs) * sample_rate / 1000);
    entry.inv_stretch = static_cast<float>(1.0 / std::min(1.0 + kWideningPer100Um * beyond_soma / 100.0, kMaxStretch));
    if (!unit.distal_waveform.empty())
        entry.distal = static_cast<float>(unit.shape_variation * std::min(1.0, beyond_soma / kDistalReachUm));
    return entry;
}

double contact_waveform(const UnitModel& unit, const FootprintEntry& entry, double samples, double samples_to_table,
                        double table_zero) {
    const double own = sample_waveform(unit.waveform, samples, samples_to_table, table_zero);
    if (entry.distal == 0)
        return own;
    const double distal = sample_waveform(unit.distal_waveform, samples, samples_to_table, table_zero);
    return (1.0 - entry.distal) * own + entry.distal * distal;
}

void create_units(const SimulationConfig& config, const probe::Probe& probe, const NoiseModel& noise,
                  double drift_reach_um, std::vector<UnitModel>& units, std::vector<GroundTruthUnit>& truth) {
    Rng rng(config.seed, Stream::unit_parameters);
    Rng tuning_rng(config.seed, Stream::tuning);
    Rng burst_rng(config.seed, Stream::bursting_units);
    Rng shape_rng(config.seed, Stream::distal_shapes);
    const int n_units = config.n_units > 0 ? config.n_units : config.n_channels * 3 / 10;
    const double fs = config.sample_rate;
    const Sections band = band_sections(fs);
    const std::size_t n_channels = static_cast<std::size_t>(config.n_channels);
    const double samples_to_table = kTableStepsPerMs * 1000.0 / fs;
    const double table_zero = kWaveformPreMs * kTableStepsPerMs;

    // Shank extents for placement; a shank is picked with probability proportional to its contacts.
    struct ShankExtent {
        int id;
        double x_min = 1e300, x_max = -1e300, y_min = 1e300, y_max = -1e300;
    };
    std::vector<ShankExtent> shanks;
    std::vector<int> shank_of_channel(n_channels);
    for (std::size_t c = 0; c < n_channels; ++c) {
        const probe::Contact& contact = probe.contacts[c];
        auto it =
            std::find_if(shanks.begin(), shanks.end(), [&](const ShankExtent& s) { return s.id == contact.shank; });
        if (it == shanks.end()) {
            shanks.push_back({contact.shank});
            it = shanks.end() - 1;
        }
        it->x_min = std::min(it->x_min, contact.x_um);
        it->x_max = std::max(it->x_max, contact.x_um);
        it->y_min = std::min(it->y_min, contact.y_um);
        it->y_max = std::max(it->y_max, contact.y_um);
        shank_of_channel[c] = static_cast<int>(it - shanks.begin());
    }

    // Background units come after the ground-truth ones and draw from their own stream: the others, and so the
    // recording without them, stay as they were.
    Rng background_rng(config.seed, Stream::background_units);
    const int n_all = n_units + config.n_background_units;
    units.resize(static_cast<std::size_t>(n_all));
    truth.resize(static_cast<std::size_t>(n_units));
    for (int id = 0; id < n_all; ++id) {
        UnitModel& unit = units[static_cast<std::size_t>(id)];
        const bool background = id >= n_units;
        Rng& draw = background ? background_rng : rng;
        const std::size_t anchor =
            std::min(static_cast<std::size_t>(draw.uniform() * static_cast<double>(n_channels)), n_channels - 1);
        const ShankExtent& shank = shanks[static_cast<std::size_t>(shank_of_channel[anchor])];
        unit.x_um = draw.uniform(shank.x_min - kColumnMarginUm, shank.x_max + kColumnMarginUm);
        unit.y_um = draw.uniform(shank.y_min, shank.y_max);
        if (background) {
            unit.z_um = draw.uniform(kBackgroundMinDistanceUm, kBackgroundMaxDistanceUm);
            unit.d0_um = draw.uniform(kBackgroundMinD0Um, kBackgroundMaxD0Um);
        } else {
            unit.z_um = draw.uniform(10.0, 40.0);
            const bool wide = draw.uniform() < kWideFootprintShare;
            unit.d0_um = wide ? draw.uniform(40.0, 60.0) : draw.uniform(20.0, 40.0);
        }
        unit.up_scale = draw.log_uniform(0.6, 1.7);
        unit.down_scale = draw.log_uniform(0.6, 1.7);
        unit.lateral_scale = draw.log_uniform(0.7, 1.4);
        unit.radius_um = kFootprintRadiusInD0 * unit.d0_um;
        unit.waveform = random_waveform_table(draw);
        if (config.shape_variation > 0) { // its own stream: every other draw stays as without the option
            Rng& shape_draw = background ? background_rng : shape_rng;
            unit.distal_waveform = random_waveform_table(shape_draw);
            if (shape_draw.uniform() < kPositiveDistalShare)
                for (float& value : unit.distal_waveform)
                    value = -value;
            unit.shape_variation = config.shape_variation;
        }
        const double snr =
            background ? draw.log_uniform(kBackgroundMinSnr, kBackgroundMaxSnr) : draw.log_uniform(3.0, 20.0);
        const double rate_hz = std::clamp(4.0 * std::exp(0.9 * draw.normal()), 0.1, 50.0);
        unit.refractory_samples = draw.uniform(1.5, 2.0) * fs / 1000.0;
        unit.poisson_rate_per_sample = 1.0 / (fs / rate_hz - unit.refractory_samples);
        unit.rng = background ? Rng(config.seed, static_cast<std::uint64_t>(Stream::first_background_spikes) +
                                                     static_cast<std::uint64_t>(id - n_units))
                              : Rng(config.seed, static_cast<std::uint64_t>(Stream::first_unit_spikes) +
                                                     static_cast<std::uint64_t>(id));
        // Own streams, so that without bursts every other draw (and so the recording) stays as it was.
        unit.bursty = !background && config.burst_fraction > 0 && burst_rng.uniform() < config.burst_fraction;
        unit.burst_rng =
            Rng(config.seed, static_cast<std::uint64_t>(Stream::first_unit_bursts) + static_cast<std::uint64_t>(id));

        // Every channel the drifting footprint can reach: the scaled distance with the vertical gap shortened by the
        // largest displacement and divided by the larger vertical scale. A sparse probe far away still gets its
        // nearest one.
        auto closest_distance = [&](const probe::Contact& contact) {
            const double dx = (contact.x_um - unit.x_um) / unit.lateral_scale;
            const double dy = std::max(std::abs(contact.y_um - unit.y_um) - drift_reach_um, 0.0) /
                              std::max(unit.up_scale, unit.down_scale);
            return std::sqrt(dx * dx + dy * dy + unit.z_um * unit.z_um);
        };
        double nearest_distance = 1e300;
        for (std::size_t c = 0; c < n_channels; ++c) {
            const double distance = closest_distance(probe.contacts[c]);
            nearest_distance = std::min(nearest_distance, distance);
            if (distance < unit.radius_um)
                unit.candidates.push_back(static_cast<int>(c));
        }
        if (unit.candidates.empty()) {
            unit.radius_um = 2.0 * nearest_distance;
            unit.d0_um = unit.radius_um / kFootprintRadiusInD0;
            for (std::size_t c = 0; c < n_channels; ++c)
                if (closest_distance(probe.contacts[c]) < unit.radius_um)
                    unit.candidates.push_back(static_cast<int>(c));
        }
        for (int c : unit.candidates) {
            const FootprintEntry entry = footprint_at(unit, probe, c, 0.0, fs);
            if (entry.gain > 0)
                unit.footprint.push_back(entry);
        }

        // SNR: band-pass each channel's template (trough sampled at 0) and scale to the drawn SNR on the channel
        // with the largest band-passed trough.
        double best_trough = 0.0;
        for (const FootprintEntry& entry : unit.footprint) {
            const double stretch = 1.0 / entry.inv_stretch;
            const int before = static_cast<int>(std::ceil(kWaveformPreMs * stretch * fs / 1000.0)) + 4;
            const int after = static_cast<int>(std::ceil((kWaveformPostMs * stretch + 2.0) * fs / 1000.0));
            std::vector<double> samples;
            samples.reserve(static_cast<std::size_t>(before + after + 1));
            for (int k = -before; k <= after; ++k)
                samples.push_back(entry.gain * contact_waveform(unit, entry, static_cast<double>(k) * entry.inv_stretch,
                                                                samples_to_table, table_zero));
            double trough = 0.0;
            for (double v : dsp::filter(band, samples))
                trough = std::min(trough, v);
            const double relative = -trough / noise.level_uv(entry.channel);
            if (relative > best_trough) {
                best_trough = relative;
                unit.peak_channel = entry.channel;
            }
        }
        unit.amplitude_uv = best_trough > 0 ? snr / best_trough : 0.0;
        if (background)
            continue;

        GroundTruthUnit& t = truth[static_cast<std::size_t>(id)];
        t.id = id;
        t.peak_channel = unit.peak_channel;
        t.snr = snr;
        t.rate_hz = rate_hz;
        t.bursty = unit.bursty;
        if (config.behavior) {
            // Exactly floor(n * share) units are tuned, spread evenly over the (randomly placed) ids.
            const double share = config.tuned_fraction;
            const bool tuned = std::floor((id + 1) * share) > std::floor(id * share);
            const double preferred = tuning_rng.uniform(0.0, 2.0 * std::numbers::pi);
            const double modulation_hz = tuning_rng.uniform(0.5, 1.0) * std::max(rate_hz, kMinModulationHz);
            unit.tuning.baseline_hz = rate_hz;
            if (tuned) {
                unit.tuning.tuned = true;
                unit.tuning.depth_hz_per_cm_s = modulation_hz / kTuningReferenceSpeedCmS;
                unit.tuning.preferred_direction_rad = preferred;
                const double highest_rate =
                    std::min(rate_hz + unit.tuning.depth_hz_per_cm_s * kMaxCursorSpeedCmS, kMaxTunedRateHz);
                unit.poisson_rate_per_sample = hazard_per_sample(unit, highest_rate, fs);
            }
            t.tuning = unit.tuning;
        }
    }
}

} // namespace spikeline::sim
