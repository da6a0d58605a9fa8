#include "sim/noise.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>

namespace spikeline::sim {
namespace {

// Times in ms, distances in um unless the name says otherwise.
constexpr double kBandLowHz = 300.0;
constexpr double kBandHighHz = 6000.0;

constexpr double kChannelLevelSpread = 0.1; // per-channel noise level in noise_uv * [1 - s, 1 + s]
constexpr double kLocalFraction = 0.15;     // band variance shared with neighbouring contacts
constexpr double kCommonFraction = 0.06;    // broadband band variance shared by a whole shank
constexpr double kLineFraction = 0.03;      // line-noise band variance (before the per-shank gain)
constexpr double kLocalSourceSpacingUm = 40.0;
constexpr double kLfpOscillationRmsInNoise = 4.0; // LFP amplitudes relative to noise_uv (raw, not band-passed)
constexpr double kLfpSlowRmsInNoise = 4.0;

double band_energy(const Sections& band, const std::vector<double>& impulse_response) {
    double energy = 0.0;
    for (double v : dsp::filter(band, impulse_response))
        energy += v * v;
    return energy;
}

// The per-channel loops of a noise frame are free functions because GCC honours restrict only on parameters,
// and without it they do not vectorise.

void add_private_noise(std::size_t n_channels, float* __restrict out, const float* __restrict drive,
                       float* __restrict state0, float* __restrict state1, float* __restrict state2,
                       const float* __restrict gain, const ColourFilter& colour) {
    const float white = colour.white;
    const float p0 = colour.pole[0], p1 = colour.pole[1], p2 = colour.pole[2];
    const float g0 = colour.gain[0], g1 = colour.gain[1], g2 = colour.gain[2];
    for (std::size_t c = 0; c < n_channels; ++c) {
        const float e = drive[c];
        const float a0 = p0 * state0[c] + g0 * e;
        const float a1 = p1 * state1[c] + g1 * e;
        const float a2 = p2 * state2[c] + g2 * e;
        state0[c] = a0;
        state1[c] = a1;
        state2[c] = a2;
        out[c] += gain[c] * (white * e + a0 + a1 + a2);
    }
}

// Channels [begin, end) all lie on one shank: two interpolated local sources each, plus the shank's common mode
// (broadband and line noise) and its LFP with a per-channel gain.
void add_shared_noise(std::size_t begin, std::size_t end, float* __restrict out, const float* __restrict source_value,
                      const int* __restrict index0, const int* __restrict index1, const float* __restrict weight0,
                      const float* __restrict weight1, float common, float lfp, const float* __restrict lfp_gain) {
    for (std::size_t c = begin; c < end; ++c)
        out[c] +=
            weight0[c] * source_value[index0[c]] + weight1[c] * source_value[index1[c]] + common + lfp_gain[c] * lfp;
}

} // namespace

Sections band_sections(double sample_rate) {
    return dsp::design_bandpass(sample_rate, kBandLowHz, std::min(kBandHighHz, 0.45 * sample_rate));
}

ColourFilter::ColourFilter(double sample_rate) {
    constexpr std::array<double, 3> corner_hz = {30.0, 200.0, 1200.0};
    constexpr std::array<double, 3> dc_level = {6.3, 2.45, 1.0};
    for (std::size_t k = 0; k < 3; ++k) {
        const double p = std::exp(-2.0 * std::numbers::pi * corner_hz[k] / sample_rate);
        pole[k] = static_cast<float>(p);
        gain[k] = static_cast<float>(dc_level[k] * (1.0 - p));
    }
}

std::vector<double> ColourFilter::impulse_response(std::size_t length) const {
    std::vector<double> h(length, 0.0);
    std::array<double, 3> state{};
    for (std::size_t n = 0; n < length; ++n) {
        const double input = n == 0 ? 1.0 : 0.0;
        double out = white * input;
        for (std::size_t k = 0; k < 3; ++k) {
            state[k] = pole[k] * state[k] + gain[k] * input;
            out += state[k];
        }
        h[n] = out;
    }
    return h;
}

NoiseModel::NoiseModel(const SimulationConfig& config, const probe::Probe& probe)
    : colour_(config.sample_rate), rng_(config.seed, Stream::noise) {
    Rng parameters(config.seed, Stream::noise_parameters);
    const double fs = config.sample_rate;
    const double noise = config.noise_uv;
    const Sections band = band_sections(fs);
    n_channels_ = static_cast<std::size_t>(probe.n_channels());

    // Shanks in order of first appearance, with their vertical extent.
    std::map<int, int> shank_index;
    shank_of_.resize(n_channels_);
    for (std::size_t c = 0; c < n_channels_; ++c) {
        const auto [it, inserted] =
            shank_index.try_emplace(probe.contacts[c].shank, static_cast<int>(shank_index.size()));
        shank_of_[c] = it->second;
        const std::size_t shank = static_cast<std::size_t>(it->second);
        if (shank_runs_.empty() || shank_runs_.back().shank != shank)
            shank_runs_.push_back({c, c + 1, shank});
        else
            shank_runs_.back().end = c + 1;
    }
    n_shanks_ = shank_index.size();
    std::vector<double> y_min(n_shanks_, 1e300), y_max(n_shanks_, -1e300), x_sum(n_shanks_, 0.0);
    std::vector<int> contacts_on(n_shanks_, 0);
    for (std::size_t c = 0; c < n_channels_; ++c) {
        const std::size_t s = static_cast<std::size_t>(shank_of_[c]);
        y_min[s] = std::min(y_min[s], probe.contacts[c].y_um);
        y_max[s] = std::max(y_max[s], probe.contacts[c].y_um);
        x_sum[s] += probe.contacts[c].x_um;
        ++contacts_on[s];
    }

    // Band variance of the colour filter for a unit-variance white input.
    const std::size_t response_length = static_cast<std::size_t>(std::ceil(0.5 * fs));
    const double colour_band_variance = band_energy(band, colour_.impulse_response(response_length));

    // Line noise: 50 or 60 Hz with odd harmonics, scaled so its in-band variance is a fixed fraction.
    const double line_hz = parameters.uniform() < 0.5 ? 50.0 : 60.0;
    constexpr std::array<double, 3> harmonic = {1.0, 3.0, 5.0};
    constexpr std::array<double, 3> harmonic_level = {1.0, 0.35, 0.2};
    double line_band_power = 0.0;
    for (std::size_t k = 0; k < harmonic.size(); ++k) {
        const double f = harmonic[k] * line_hz;
        const double phase = parameters.uniform(0.0, 2.0 * std::numbers::pi);
        if (f >= 0.45 * fs)
            continue;
        const double h = dsp::magnitude_response(band, fs, f);
        line_band_power += harmonic_level[k] * harmonic_level[k] * h * h / 2.0;
        line_phasor_.push_back(std::polar(1.0, phase));
        line_step_.push_back(std::polar(1.0, 2.0 * std::numbers::pi * f / fs));
        line_level_.push_back(harmonic_level[k]);
    }
    const double line_amplitude =
        line_band_power > 0 ? std::sqrt(kLineFraction * noise * noise / line_band_power) : 0.0;
    for (double& level : line_level_)
        level *= line_amplitude;

    // LFP: a theta-like resonance plus a slow first-order process, independent per shank, deepening gain.
    const double oscillation_hz = parameters.uniform(4.0, 12.0);
    const double radius = std::exp(-std::numbers::pi * 3.0 / fs); // ~3 Hz bandwidth
    lfp_a1_ = 2.0 * radius * std::cos(2.0 * std::numbers::pi * oscillation_hz / fs);
    lfp_a2_ = -radius * radius;
    lfp_slow_pole_ = std::exp(-2.0 * std::numbers::pi * 2.0 / fs);
    const std::size_t lfp_length = static_cast<std::size_t>(std::ceil(3.0 * fs));
    std::vector<double> oscillation(lfp_length), slow(lfp_length);
    {
        double y1 = 0, y2 = 0, s = 0;
        for (std::size_t n = 0; n < lfp_length; ++n) {
            const double input = n == 0 ? 1.0 : 0.0;
            const double y = lfp_a1_ * y1 + lfp_a2_ * y2 + input;
            y2 = y1;
            y1 = y;
            s = lfp_slow_pole_ * s + input;
            oscillation[n] = y;
            slow[n] = s;
        }
    }
    auto energy = [](const std::vector<double>& v) {
        double e = 0;
        for (double x : v)
            e += x * x;
        return e;
    };
    lfp_oscillation_gain_ = kLfpOscillationRmsInNoise * noise / std::sqrt(energy(oscillation));
    lfp_slow_gain_ = kLfpSlowRmsInNoise * noise / std::sqrt(energy(slow));
    const double lfp_band_variance = lfp_oscillation_gain_ * lfp_oscillation_gain_ * band_energy(band, oscillation) +
                                     lfp_slow_gain_ * lfp_slow_gain_ * band_energy(band, slow);

    // Per shank: common broadband and line gains.
    common_gain_ = static_cast<float>(std::sqrt(kCommonFraction * noise * noise / colour_band_variance));
    line_gain_.resize(n_shanks_);
    for (double& gain : line_gain_)
        gain = parameters.uniform(0.8, 1.2);

    // Local sources along each shank, spaced kLocalSourceSpacingUm.
    std::vector<std::size_t> first_source(n_shanks_);
    std::vector<std::size_t> sources_on(n_shanks_);
    for (std::size_t s = 0; s < n_shanks_; ++s) {
        first_source[s] = n_sources_;
        sources_on[s] = static_cast<std::size_t>(std::floor((y_max[s] - y_min[s]) / kLocalSourceSpacingUm)) + 1;
        n_sources_ += sources_on[s];
    }

    // Per channel: level, local mixing weights, LFP gain, private gain from what is left of the band variance.
    private_gain_.resize(n_channels_);
    lfp_gain_.resize(n_channels_);
    for (auto& v : local_index_)
        v.assign(n_channels_, 0);
    for (auto& v : local_weight_)
        v.assign(n_channels_, 0.0f);
    level_uv_.resize(n_channels_);
    for (std::size_t c = 0; c < n_channels_; ++c) {
        const std::size_t s = static_cast<std::size_t>(shank_of_[c]);
        const double level = noise * parameters.uniform(1.0 - kChannelLevelSpread, 1.0 + kChannelLevelSpread);
        level_uv_[c] = level;
        const double span = y_max[s] - y_min[s];
        const double depth = span > 0 ? (probe.contacts[c].y_um - y_min[s]) / span : 0.5;
        lfp_gain_[c] = static_cast<float>(0.6 + 0.8 * depth);

        // The two sources around the contact, interpolated with constant power (cos/sin weights).
        const double position = (probe.contacts[c].y_um - y_min[s]) / kLocalSourceSpacingUm;
        const double below = std::clamp(std::floor(position), 0.0, static_cast<double>(sources_on[s]) - 2.0);
        const double fraction = sources_on[s] > 1 ? std::clamp(position - below, 0.0, 1.0) : 0.0;
        const double local_scale = std::sqrt(kLocalFraction * level * level / colour_band_variance);
        const std::size_t first = first_source[s] + static_cast<std::size_t>(std::max(below, 0.0));
        local_index_[0][c] = static_cast<int>(first);
        local_index_[1][c] = static_cast<int>(sources_on[s] > 1 ? first + 1 : first);
        local_weight_[0][c] = static_cast<float>(local_scale * std::cos(0.5 * std::numbers::pi * fraction));
        local_weight_[1][c] = static_cast<float>(local_scale * std::sin(0.5 * std::numbers::pi * fraction));

        const double lfp_band = lfp_gain_[c] * lfp_gain_[c] * lfp_band_variance;
        const double line_band = line_gain_[s] * line_gain_[s] * kLineFraction * noise * noise;
        const double shared = kLocalFraction * level * level + kCommonFraction * noise * noise + line_band + lfp_band;
        const double remaining = std::max(level * level - shared, 0.1 * level * level);
        private_gain_[c] = static_cast<float>(std::sqrt(remaining / colour_band_variance));
    }

    for (auto& v : channel_state_)
        v.assign(n_channels_, 0.0f);
    for (auto& v : source_state_)
        v.assign(n_sources_, 0.0f);
    source_value_.assign(n_sources_, 0.0f);
    source_gain_.assign(n_sources_, 1.0f);
    common_state_.assign(n_shanks_, {});
    lfp_state_.assign(n_shanks_, {});
    shank_common_.assign(n_shanks_, 0.0f);
    shank_lfp_.assign(n_shanks_, 0.0f);
    const std::size_t draws = n_channels_ + n_sources_ + 3 * n_shanks_;
    normals_.assign((draws + 3) / 4 * 4, 0.0f);
}

void NoiseModel::add(float* acc, std::size_t n_frames) {
    const float* table = gaussian_table().data();
    const std::size_t nc = n_channels_;
    const std::size_t ns = n_sources_;
    const float white = colour_.white;
    const float p0 = colour_.pole[0], p1 = colour_.pole[1], p2 = colour_.pole[2];
    const float g0 = colour_.gain[0], g1 = colour_.gain[1], g2 = colour_.gain[2];

    for (std::size_t f = 0; f < n_frames; ++f) {
        fill_normals(rng_, table, normals_.data(), normals_.size());
        const float* channel_drive = normals_.data();
        const float* source_drive = channel_drive + nc;
        const float* shank_drive = source_drive + ns;

        std::fill(source_value_.begin(), source_value_.end(), 0.0f);
        add_private_noise(ns, source_value_.data(), source_drive, source_state_[0].data(), source_state_[1].data(),
                          source_state_[2].data(), source_gain_.data(), colour_);

        double line = 0.0;
        for (std::size_t k = 0; k < line_phasor_.size(); ++k) {
            line += line_level_[k] * line_phasor_[k].imag();
            line_phasor_[k] *= line_step_[k];
        }
        for (std::size_t s = 0; s < n_shanks_; ++s) {
            const float e = shank_drive[3 * s];
            std::array<float, 3>& state = common_state_[s];
            state[0] = p0 * state[0] + g0 * e;
            state[1] = p1 * state[1] + g1 * e;
            state[2] = p2 * state[2] + g2 * e;
            const float broadband = common_gain_ * (white * e + state[0] + state[1] + state[2]);
            shank_common_[s] = broadband + static_cast<float>(line_gain_[s] * line);

            LfpState& lfp = lfp_state_[s];
            const double oscillation = lfp_a1_ * lfp.y1 + lfp_a2_ * lfp.y2 + shank_drive[3 * s + 1];
            lfp.y2 = lfp.y1;
            lfp.y1 = oscillation;
            lfp.slow = lfp_slow_pole_ * lfp.slow + shank_drive[3 * s + 2];
            shank_lfp_[s] = static_cast<float>(lfp_oscillation_gain_ * oscillation + lfp_slow_gain_ * lfp.slow);
        }

        add_channel_frame(acc + f * nc, channel_drive);
    }
    // Keep the rotating phasors on the unit circle over arbitrarily long recordings.
    for (auto& phasor : line_phasor_)
        phasor /= std::abs(phasor);
}

void NoiseModel::add_channel_frame(float* out, const float* drive) {
    add_private_noise(n_channels_, out, drive, channel_state_[0].data(), channel_state_[1].data(),
                      channel_state_[2].data(), private_gain_.data(), colour_);
    for (const ShankRun& run : shank_runs_)
        add_shared_noise(run.begin, run.end, out, source_value_.data(), local_index_[0].data(), local_index_[1].data(),
                         local_weight_[0].data(), local_weight_[1].data(), shank_common_[run.shank],
                         shank_lfp_[run.shank], lfp_gain_.data());
}

} // namespace spikeline::sim
