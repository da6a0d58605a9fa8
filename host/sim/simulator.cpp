#include "sim/simulator.hpp"

#include "dsp/filter_design.hpp"
#include "io/npy.hpp"
#include "io/spikeglx.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstring>
#include <map>
#include <numbers>
#include <optional>
#include <queue>
#include <sstream>
#include <string>

namespace spikeline::sim {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// Model constants. Times in ms, distances in um unless the name says otherwise.

constexpr double kBandLowHz = 300.0;
constexpr double kBandHighHz = 6000.0;

constexpr double kWaveformPreMs = 1.0;   ///< canonical template support before the trough
constexpr double kWaveformPostMs = 3.0;  ///< ... and after it (the after-hyperpolarisation is slow)
constexpr double kTableStepsPerMs = 480; ///< resolution of the canonical waveform table (~2 us)
constexpr double kMaxStretch = 1.5;      ///< waveform widening far from the soma is capped here
constexpr double kWideningPer100Um = 0.3;
constexpr double kDelayMsPerUm = 0.001; ///< 0.1 ms per 100 um of propagation
constexpr double kMaxDelayMs = 0.3;
constexpr double kFootprintRadiusInD0 = 4.5; ///< footprint is tapered to zero at this multiple of d0
constexpr double kAmplitudeJitterSigma = 0.1;
constexpr double kDriftAmplitudeUm = 25.0;
constexpr double kColumnMarginUm = 15.0;

constexpr double kChannelLevelSpread = 0.1; ///< per-channel noise level in noise_uv * [1 - s, 1 + s]
constexpr double kLocalFraction = 0.15;     ///< band variance shared with neighbouring contacts
constexpr double kCommonFraction = 0.06;    ///< broadband band variance shared by a whole shank
constexpr double kLineFraction = 0.03;      ///< line-noise band variance (before the per-shank gain)
constexpr double kLocalSourceSpacingUm = 40.0;
constexpr double kLfpOscillationRmsInNoise = 4.0; ///< LFP amplitudes relative to noise_uv (raw, not band-passed)
constexpr double kLfpSlowRmsInNoise = 4.0;

constexpr std::size_t kBlockFrames = 1024; ///< internal generation block: output never depends on read() sizes

// ---------------------------------------------------------------------------------------------------------------
// Random numbers: xoshiro256** seeded through splitmix64, one independent stream per purpose so that, e.g., the
// noise is identical whether or not units are simulated.

std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

enum class Stream : std::uint64_t {
    noise_parameters = 1,
    noise = 2,
    unit_parameters = 3,
    reaches = 4,
    tuning = 5,
    first_unit_spikes = 1000
};

class Rng {
public:
    Rng() = default;
    Rng(std::uint64_t seed, std::uint64_t stream) {
        std::uint64_t mixer = seed;
        const std::uint64_t stream_key = splitmix64(mixer) ^ (stream * 0xd1b54a32d192ed03ULL);
        mixer = stream_key;
        for (std::uint64_t& word : state_)
            word = splitmix64(mixer);
    }
    Rng(std::uint64_t seed, Stream stream) : Rng(seed, static_cast<std::uint64_t>(stream)) {}

    std::uint64_t next() {
        const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const std::uint64_t shifted = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= shifted;
        state_[3] = rotl(state_[3], 45);
        return result;
    }
    /// Uniform in [0, 1).
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    double uniform(double low, double high) { return low + (high - low) * uniform(); }
    double log_uniform(double low, double high) { return std::exp(uniform(std::log(low), std::log(high))); }
    double normal() {
        const double radius = std::sqrt(-2.0 * std::log(1.0 - uniform()));
        return radius * std::cos(2.0 * std::numbers::pi * uniform());
    }
    double exponential(double rate) { return -std::log(1.0 - uniform()) / rate; }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::array<std::uint64_t, 4> state_{};
};

/// Unit-variance Gaussian quantiles at 2^16 equally likely levels: 16 random bits give one normal deviate with a
/// table lookup, which is what makes a billion noise samples a minute affordable. Tails reach +-4.3 sigma.
const std::vector<float>& gaussian_table() {
    static const std::vector<float> table = [] {
        constexpr std::size_t size = std::size_t{1} << 16;
        constexpr std::size_t half = size / 2;
        std::vector<double> quantiles(size);
        double x = 0.0;
        for (std::size_t i = 0; i < half; ++i) {
            // Upper-tail probability of level half + i; Newton on Q(x) = erfc(x / sqrt 2) / 2 from the previous level.
            const double tail = (static_cast<double>(half - i) - 0.5) / static_cast<double>(size);
            for (int iteration = 0; iteration < 60; ++iteration) {
                const double density = std::exp(-0.5 * x * x) / std::sqrt(2.0 * std::numbers::pi);
                const double step = (0.5 * std::erfc(x / std::numbers::sqrt2) - tail) / density;
                x += step;
                if (std::abs(step) < 1e-13)
                    break;
            }
            quantiles[half + i] = x;
            quantiles[half - 1 - i] = -x;
        }
        double power = 0.0;
        for (double q : quantiles)
            power += q * q;
        const double scale = 1.0 / std::sqrt(power / static_cast<double>(size));
        std::vector<float> result(size);
        for (std::size_t i = 0; i < size; ++i)
            result[i] = static_cast<float>(quantiles[i] * scale);
        return result;
    }();
    return table;
}

/// Fills count (a multiple of 4) unit normal deviates.
void fill_normals(Rng& rng, const float* table, float* out, std::size_t count) {
    for (std::size_t i = 0; i < count; i += 4) {
        const std::uint64_t bits = rng.next();
        out[i] = table[bits & 0xffff];
        out[i + 1] = table[(bits >> 16) & 0xffff];
        out[i + 2] = table[(bits >> 32) & 0xffff];
        out[i + 3] = table[bits >> 48];
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Noise

using Sections = std::array<dsp::Biquad, 2>;

Sections band_sections(double sample_rate) {
    return dsp::design_bandpass(sample_rate, kBandLowHz, std::min(kBandHighHz, 0.45 * sample_rate));
}

double band_energy(const Sections& band, const std::vector<double>& impulse_response) {
    double energy = 0.0;
    for (double v : dsp::filter(band, impulse_response))
        energy += v * v;
    return energy;
}

/// 1/f-like colouring of a white input: white + three first-order low-passes fed by the same input, with corner
/// frequencies spread over the band and DC levels falling as 1/sqrt(corner) (a staircase approximation of pink).
struct ColourFilter {
    float white = 1.0f;
    std::array<float, 3> pole{};
    std::array<float, 3> gain{};

    explicit ColourFilter(double sample_rate) {
        constexpr std::array<double, 3> corner_hz = {30.0, 200.0, 1200.0};
        constexpr std::array<double, 3> dc_level = {6.3, 2.45, 1.0};
        for (std::size_t k = 0; k < 3; ++k) {
            const double p = std::exp(-2.0 * std::numbers::pi * corner_hz[k] / sample_rate);
            pole[k] = static_cast<float>(p);
            gain[k] = static_cast<float>(dc_level[k] * (1.0 - p));
        }
    }

    std::vector<double> impulse_response(std::size_t length) const {
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
};

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

/// Channels [begin, end) all lie on one shank: two interpolated local sources each, plus the shank's common mode
/// (broadband and line noise) and its LFP with a per-channel gain.
void add_shared_noise(std::size_t begin, std::size_t end, float* __restrict out, const float* __restrict source_value,
                      const int* __restrict index0, const int* __restrict index1, const float* __restrict weight0,
                      const float* __restrict weight1, float common, float lfp, const float* __restrict lfp_gain) {
    for (std::size_t c = begin; c < end; ++c)
        out[c] +=
            weight0[c] * source_value[index0[c]] + weight1[c] * source_value[index1[c]] + common + lfp_gain[c] * lfp;
}

/// The noise of every channel, in microvolts, generated frame by frame with state kept across blocks.
class NoiseModel {
public:
    NoiseModel(const SimulationConfig& config, const probe::Probe& probe)
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
        const double lfp_band_variance =
            lfp_oscillation_gain_ * lfp_oscillation_gain_ * band_energy(band, oscillation) +
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
            const double shared =
                kLocalFraction * level * level + kCommonFraction * noise * noise + line_band + lfp_band;
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

    /// Band-passed noise RMS of channel c, in microvolts (the SNR reference).
    double level_uv(int channel) const { return level_uv_[static_cast<std::size_t>(channel)]; }

    /// Adds the next n_frames frames of noise to acc (time-major, n_channels per frame).
    void add(float* acc, std::size_t n_frames) {
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

private:
    void add_channel_frame(float* out, const float* drive) {
        add_private_noise(n_channels_, out, drive, channel_state_[0].data(), channel_state_[1].data(),
                          channel_state_[2].data(), private_gain_.data(), colour_);
        for (const ShankRun& run : shank_runs_)
            add_shared_noise(run.begin, run.end, out, source_value_.data(), local_index_[0].data(),
                             local_index_[1].data(), local_weight_[0].data(), local_weight_[1].data(),
                             shank_common_[run.shank], shank_lfp_[run.shank], lfp_gain_.data());
    }

    struct LfpState {
        double y1 = 0, y2 = 0, slow = 0;
    };

    ColourFilter colour_;
    Rng rng_;
    std::size_t n_channels_ = 0;
    std::size_t n_shanks_ = 0;
    std::size_t n_sources_ = 0;
    std::vector<int> shank_of_;
    std::vector<double> level_uv_;
    std::vector<float> private_gain_;
    std::vector<float> lfp_gain_;
    std::array<std::vector<int>, 2> local_index_;
    std::array<std::vector<float>, 2> local_weight_;
    struct ShankRun {
        std::size_t begin, end, shank; ///< consecutive channels on one shank
    };
    std::vector<ShankRun> shank_runs_;
    std::array<std::vector<float>, 3> channel_state_;
    std::array<std::vector<float>, 3> source_state_;
    std::vector<float> source_value_;
    std::vector<float> source_gain_;
    float common_gain_ = 0;
    std::vector<std::array<float, 3>> common_state_;
    std::vector<double> line_gain_;
    std::vector<std::complex<double>> line_phasor_;
    std::vector<std::complex<double>> line_step_;
    std::vector<double> line_level_;
    double lfp_a1_ = 0, lfp_a2_ = 0, lfp_slow_pole_ = 0;
    double lfp_oscillation_gain_ = 0, lfp_slow_gain_ = 0;
    std::vector<LfpState> lfp_state_;
    std::vector<float> shank_common_;
    std::vector<float> shank_lfp_;
    std::vector<float> normals_;
};

// ---------------------------------------------------------------------------------------------------------------
// Behaviour: a 2-D cursor making minimum-jerk reaches to random targets in a square workspace, with a pause at
// every target. Positions in cm from the workspace centre, times in seconds.

constexpr double kWorkspaceHalfWidthCm = 10.0;
constexpr double kMinReachCm = 3.0;
constexpr double kPauseMinS = 0.2;
constexpr double kPauseMaxS = 0.6;
constexpr double kReachBaseS = 0.4; ///< reach duration = base + per_cm * distance (longer reaches are faster)
constexpr double kReachPerCmS = 0.04;
/// Minimum-jerk peak speed is 1.875 distance / duration < 1.875 / kReachPerCmS for any distance.
constexpr double kMaxCursorSpeedCmS = 1.875 / kReachPerCmS;
constexpr double kTuningReferenceSpeedCmS = 20.0;
constexpr double kMinModulationHz = 5.0; ///< low-rate units still modulate by a few Hz at the reference speed
constexpr double kMaxTunedRateHz = 200.0;

/// The cursor path, generated segment by segment (pause, then reach) so that memory does not grow with time.
/// at() must be called with non-decreasing times: two instances with the same seed give the same path.
class ReachTrajectory {
public:
    explicit ReachTrajectory(std::uint64_t seed) : rng_(seed, Stream::reaches) { plan_next(0.0); }

    KinematicsSample at(double t) {
        while (t >= reach_end_)
            plan_next(reach_end_);
        KinematicsSample sample;
        sample.time_s = t;
        if (t < reach_start_) {
            sample.x_cm = from_x_;
            sample.y_cm = from_y_;
            return sample;
        }
        // Minimum jerk: s = 10 u^3 - 15 u^4 + 6 u^5 of the normalised time u.
        const double duration = reach_end_ - reach_start_;
        const double u = (t - reach_start_) / duration;
        const double s = u * u * u * (10.0 + u * (-15.0 + 6.0 * u));
        const double ds = 30.0 * u * u * (1.0 - u) * (1.0 - u) / duration;
        sample.x_cm = from_x_ + (to_x_ - from_x_) * s;
        sample.y_cm = from_y_ + (to_y_ - from_y_) * s;
        sample.vx_cm_s = (to_x_ - from_x_) * ds;
        sample.vy_cm_s = (to_y_ - from_y_) * ds;
        return sample;
    }

private:
    void plan_next(double start) {
        from_x_ = to_x_;
        from_y_ = to_y_;
        double distance = 0.0;
        do {
            to_x_ = rng_.uniform(-kWorkspaceHalfWidthCm, kWorkspaceHalfWidthCm);
            to_y_ = rng_.uniform(-kWorkspaceHalfWidthCm, kWorkspaceHalfWidthCm);
            distance = std::hypot(to_x_ - from_x_, to_y_ - from_y_);
        } while (distance < kMinReachCm);
        reach_start_ = start + rng_.uniform(kPauseMinS, kPauseMaxS);
        reach_end_ = reach_start_ + kReachBaseS + kReachPerCmS * distance;
    }

    Rng rng_;
    double from_x_ = 0, from_y_ = 0, to_x_ = 0, to_y_ = 0;
    double reach_start_ = 0, reach_end_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// Units

double gaussian_bump(double t, double centre, double width) {
    const double z = (t - centre) / width;
    return std::exp(-0.5 * z * z);
}

/// Raised-cosine edges so the template starts and ends at exactly zero.
double template_taper(double t_ms) {
    constexpr double rise_ms = 0.3;
    constexpr double fall_ms = 0.7;
    if (t_ms <= -kWaveformPreMs || t_ms >= kWaveformPostMs)
        return 0.0;
    if (t_ms < -kWaveformPreMs + rise_ms)
        return 0.5 - 0.5 * std::cos(std::numbers::pi * (t_ms + kWaveformPreMs) / rise_ms);
    if (t_ms > kWaveformPostMs - fall_ms)
        return 0.5 - 0.5 * std::cos(std::numbers::pi * (kWaveformPostMs - t_ms) / fall_ms);
    return 1.0;
}

/// A random extracellular action-potential shape: an asymmetric negative trough (fast fall, slower rise), a slower
/// positive after-hyperpolarisation at the trough-to-peak width, and for tri-phasic units a small positive pre-peak.
/// Returned as a table over [-pre, post] ms with the true minimum exactly at t = 0 and a value of -1 there.
std::vector<float> random_waveform_table(Rng& rng) {
    const bool narrow = rng.uniform() < 0.3; // fast-spiking interneuron-like
    const double width_ms = narrow ? rng.uniform(0.3, 0.45) : rng.uniform(0.55, 1.0);
    const double fall_ms = rng.uniform(0.045, 0.075);
    const double rise_ms = width_ms * rng.uniform(0.2, 0.3);
    const double ahp_level = narrow ? rng.uniform(0.3, 0.6) : rng.uniform(0.12, 0.35);
    const double ahp_width_ms = std::clamp(width_ms * rng.uniform(0.35, 0.55), 0.08, 0.45);
    const bool triphasic = rng.uniform() < 0.5;
    const double pre_level = triphasic ? rng.uniform(0.05, 0.2) : 0.0;
    const double pre_width_ms = rng.uniform(0.05, 0.1);
    const double pre_centre_ms = -(2.2 * fall_ms + 1.5 * pre_width_ms);

    auto shape = [&](double t) {
        const double trough = t < 0 ? gaussian_bump(t, 0.0, fall_ms) : gaussian_bump(t, 0.0, rise_ms);
        return -trough + ahp_level * gaussian_bump(t, width_ms, ahp_width_ms) +
               pre_level * gaussian_bump(t, pre_centre_ms, pre_width_ms);
    };
    // The bumps overlap a little, so find the true minimum near 0 and shift it to 0.
    double best_t = 0.0, best_value = shape(0.0);
    for (double t = -0.2; t <= 0.2; t += 1e-4) {
        const double v = shape(t);
        if (v < best_value) {
            best_value = v;
            best_t = t;
        }
    }
    const std::size_t zero = static_cast<std::size_t>(kWaveformPreMs * kTableStepsPerMs);
    const std::size_t length = static_cast<std::size_t>((kWaveformPreMs + kWaveformPostMs) * kTableStepsPerMs) + 1;
    std::vector<float> table(length);
    for (std::size_t i = 0; i < length; ++i) {
        const double t = (static_cast<double>(i) - static_cast<double>(zero)) / kTableStepsPerMs;
        table[i] = static_cast<float>(template_taper(t) * shape(t + best_t) / -best_value);
    }
    table.front() = 0.0f;
    table.back() = 0.0f;
    return table;
}

struct FootprintEntry {
    int channel = 0;
    float gain = 0;        ///< relative amplitude (0..1) at this contact
    float delay = 0;       ///< samples after the soma's trough
    float inv_stretch = 1; ///< 1 / widening factor
};

struct UnitModel {
    double x_um = 0, y_um = 0, z_um = 0;
    double d0_um = 0, radius_um = 0;
    double amplitude_uv = 0; ///< raw trough for gain 1
    double refractory_samples = 0;
    double poisson_rate_per_sample = 0; ///< for tuned units, the hazard at the highest possible rate (thinning)
    UnitTuning tuning;
    int peak_channel = 0;
    std::vector<float> waveform;
    std::vector<int> candidates;           ///< channels that can ever be within the footprint
    std::vector<FootprintEntry> footprint; ///< at the undrifted position
    Rng rng;
};

struct QueuedSpike {
    double time = 0; ///< samples, trough at the soma
    std::int32_t unit = 0;
    bool operator>(const QueuedSpike& other) const {
        return time != other.time ? time > other.time : unit > other.unit;
    }
};

struct PendingTruth {
    GroundTruthSpike spike;
    bool operator>(const PendingTruth& other) const {
        return spike.sample != other.spike.sample ? spike.sample > other.spike.sample : spike.unit > other.spike.unit;
    }
};

void check_config(const SimulationConfig& config, const probe::Probe& probe) {
    require(config.n_channels >= 1,
            "the number of channels must be at least 1 (got " + std::to_string(config.n_channels) + ")");
    require(config.n_channels == probe.n_channels(),
            "the probe has " + std::to_string(probe.n_channels()) + " channels but the simulation asks for " +
                std::to_string(config.n_channels) + ": use a probe with as many contacts as channels");
    require(std::isfinite(config.sample_rate) && config.sample_rate >= 1000.0 && config.sample_rate <= 1e6,
            "the sample rate must be between 1000 Hz and 1 MHz (got " + std::to_string(config.sample_rate) + ")");
    require(std::isfinite(config.duration_s) && config.duration_s > 0,
            "the duration must be positive (got " + std::to_string(config.duration_s) + " s)");
    require(config.duration_s * config.sample_rate >= 1.0 && config.duration_s * config.sample_rate < 1e15,
            "the duration must cover at least one sample and stay below 1e15 samples");
    require(config.n_units >= 0, "the number of units cannot be negative (got " + std::to_string(config.n_units) +
                                     "; 0 means 3 units per 10 channels)");
    require(config.n_units <= 100000,
            "at most 100000 units can be simulated (got " + std::to_string(config.n_units) + ")");
    require(std::isfinite(config.microvolts_per_bit) && config.microvolts_per_bit > 0,
            "microvolts per bit must be positive (got " + std::to_string(config.microvolts_per_bit) + ")");
    require(std::isfinite(config.noise_uv) && config.noise_uv > 0 && config.noise_uv <= 1000,
            "the noise level must be between 0 and 1000 uV RMS (got " + std::to_string(config.noise_uv) + ")");
    require(std::isfinite(config.drift_um_per_s) && std::abs(config.drift_um_per_s) <= 1000,
            "the drift speed must be at most 1000 um/s in magnitude (got " + std::to_string(config.drift_um_per_s) +
                ")");
    for (const probe::Contact& contact : probe.contacts)
        require(std::isfinite(contact.x_um) && std::isfinite(contact.y_um),
                "probe contact " + contact.id + " has a non-finite position");
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------

struct Simulator::Impl {
    SimulationConfig config;
    probe::Probe probe;
    io::RecordingInfo recording;
    NoiseModel noise;
    std::vector<UnitModel> units;
    std::vector<GroundTruthUnit> truth;
    /// With behavior: the path the tuned units follow (queried at spike candidates, in time order) and a second
    /// instance of the same path sampled for kinematics.npy, so neither needs to be stored.
    std::optional<ReachTrajectory> neural_trajectory;
    std::optional<ReachTrajectory> recorded_trajectory;
    std::uint64_t next_kinematics_step = 0;

    double samples_to_table = 0; ///< canonical table steps per sample
    double table_zero = 0;
    std::int64_t pre_extent = 0;  ///< frames a spike may reach before its soma trough
    std::int64_t post_extent = 0; ///< ... and after it
    bool drifting = false;

    std::size_t n_channels = 0;
    std::vector<float> accumulator; ///< frames [block_start, block_start + kBlockFrames + extents)
    std::vector<std::int16_t> block;
    std::uint64_t block_start = 0;
    std::size_t block_length = 0;
    std::size_t block_offset = 0;
    std::uint64_t next_block_start = 0;
    std::uint64_t frames_returned = 0;

    std::priority_queue<QueuedSpike, std::vector<QueuedSpike>, std::greater<>> spike_queue;
    std::priority_queue<PendingTruth, std::vector<PendingTruth>, std::greater<>> pending_truth;
    std::vector<FootprintEntry> scratch_footprint;

    Impl(const SimulationConfig& c, const probe::Probe& p) : config(c), probe(p), noise(c, p) {
        n_channels = static_cast<std::size_t>(config.n_channels);
        const double fs = config.sample_rate;
        recording.n_channels = config.n_channels;
        recording.sample_rate = fs;
        recording.n_frames = static_cast<std::uint64_t>(std::llround(config.duration_s * fs));
        recording.microvolts_per_bit = config.microvolts_per_bit;
        recording.format = "simulated";

        samples_to_table = kTableStepsPerMs * 1000.0 / fs;
        table_zero = kWaveformPreMs * kTableStepsPerMs;
        pre_extent = static_cast<std::int64_t>(std::ceil(kWaveformPreMs * kMaxStretch * fs / 1000.0)) + 1;
        post_extent =
            static_cast<std::int64_t>(std::ceil((kMaxDelayMs + kWaveformPostMs * kMaxStretch) * fs / 1000.0)) + 2;
        drifting = config.drift_um_per_s != 0.0;

        if (config.behavior) {
            neural_trajectory.emplace(config.seed);
            recorded_trajectory.emplace(config.seed);
        }
        if (!config.noise_only)
            create_units();

        const std::size_t accumulator_frames = kBlockFrames + static_cast<std::size_t>(pre_extent + post_extent) + 1;
        accumulator.assign(accumulator_frames * n_channels, 0.0f);
        block.assign(kBlockFrames * n_channels, 0);
    }

    /// Vertical displacement of every unit relative to the probe at a time (triangle wave, rigid).
    double drift_offset_um(double time_samples) const {
        if (!drifting)
            return 0.0;
        const double travelled = std::abs(config.drift_um_per_s) * time_samples / config.sample_rate;
        const double period = 4.0 * kDriftAmplitudeUm;
        const double m = std::fmod(travelled, period);
        const double offset = m < kDriftAmplitudeUm       ? m
                              : m < 3 * kDriftAmplitudeUm ? 2 * kDriftAmplitudeUm - m
                                                          : m - period;
        return config.drift_um_per_s > 0 ? offset : -offset;
    }

    FootprintEntry footprint_at(const UnitModel& unit, int channel, double y_offset) const {
        const probe::Contact& contact = probe.contacts[static_cast<std::size_t>(channel)];
        const double dx = contact.x_um - unit.x_um;
        const double dy = contact.y_um - (unit.y_um + y_offset);
        const double distance = std::sqrt(dx * dx + dy * dy + unit.z_um * unit.z_um);
        FootprintEntry entry;
        entry.channel = channel;
        if (distance >= unit.radius_um)
            return entry;
        // Lorentzian-like decay, shifted so it reaches zero smoothly at the footprint radius.
        const double at_edge = 1.0 / (1.0 + std::pow(unit.radius_um / unit.d0_um, 2));
        const double decay = 1.0 / (1.0 + std::pow(distance / unit.d0_um, 2));
        entry.gain = static_cast<float>((decay - at_edge) / (1.0 - at_edge));
        const double beyond_soma = distance - unit.z_um;
        entry.delay =
            static_cast<float>(std::min(beyond_soma * kDelayMsPerUm, kMaxDelayMs) * config.sample_rate / 1000);
        entry.inv_stretch =
            static_cast<float>(1.0 / std::min(1.0 + kWideningPer100Um * beyond_soma / 100.0, kMaxStretch));
        return entry;
    }

    /// Poisson hazard per sample that, after the refractory period, gives a mean rate of rate_hz.
    double hazard_per_sample(const UnitModel& unit, double rate_hz) const {
        return rate_hz > 0 ? 1.0 / (config.sample_rate / rate_hz - unit.refractory_samples) : 0.0;
    }

    double tuned_rate_hz(const UnitModel& unit, double time_samples) {
        const KinematicsSample cursor = neural_trajectory->at(time_samples / config.sample_rate);
        const UnitTuning& tuning = unit.tuning;
        // |v| cos(theta - preferred) is the velocity's projection on the preferred direction.
        const double drive = cursor.vx_cm_s * std::cos(tuning.preferred_direction_rad) +
                             cursor.vy_cm_s * std::sin(tuning.preferred_direction_rad);
        return std::clamp(tuning.baseline_hz + tuning.depth_hz_per_cm_s * drive, 0.0, kMaxTunedRateHz);
    }

    void create_units() {
        Rng rng(config.seed, Stream::unit_parameters);
        Rng tuning_rng(config.seed, Stream::tuning);
        const int n_units = config.n_units > 0 ? config.n_units : config.n_channels * 3 / 10;
        const double fs = config.sample_rate;
        const Sections band = band_sections(fs);

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

        units.resize(static_cast<std::size_t>(n_units));
        truth.resize(static_cast<std::size_t>(n_units));
        for (int id = 0; id < n_units; ++id) {
            UnitModel& unit = units[static_cast<std::size_t>(id)];
            const std::size_t anchor =
                std::min(static_cast<std::size_t>(rng.uniform() * static_cast<double>(n_channels)), n_channels - 1);
            const ShankExtent& shank = shanks[static_cast<std::size_t>(shank_of_channel[anchor])];
            unit.x_um = rng.uniform(shank.x_min - kColumnMarginUm, shank.x_max + kColumnMarginUm);
            unit.y_um = rng.uniform(shank.y_min, shank.y_max);
            unit.z_um = rng.uniform(10.0, 40.0);
            unit.d0_um = rng.uniform(20.0, 40.0);
            unit.radius_um = kFootprintRadiusInD0 * unit.d0_um;
            unit.waveform = random_waveform_table(rng);
            const double snr = rng.log_uniform(3.0, 20.0);
            const double rate_hz = std::clamp(4.0 * std::exp(0.9 * rng.normal()), 0.1, 50.0);
            unit.refractory_samples = rng.uniform(1.5, 2.0) * fs / 1000.0;
            unit.poisson_rate_per_sample = 1.0 / (fs / rate_hz - unit.refractory_samples);
            unit.rng = Rng(config.seed,
                           static_cast<std::uint64_t>(Stream::first_unit_spikes) + static_cast<std::uint64_t>(id));

            // Every channel the drifting footprint can reach; a sparse probe far away still gets its nearest one.
            const double reach = unit.radius_um + (drifting ? kDriftAmplitudeUm : 0.0);
            double nearest_distance = 1e300;
            for (std::size_t c = 0; c < n_channels; ++c) {
                const probe::Contact& contact = probe.contacts[c];
                const double dx = contact.x_um - unit.x_um;
                const double dy =
                    std::max(std::abs(contact.y_um - unit.y_um) - (drifting ? kDriftAmplitudeUm : 0.0), 0.0);
                const double distance = std::sqrt(dx * dx + dy * dy + unit.z_um * unit.z_um);
                nearest_distance = std::min(nearest_distance, distance);
                if (distance < reach)
                    unit.candidates.push_back(static_cast<int>(c));
            }
            if (unit.candidates.empty()) {
                unit.radius_um = 2.0 * nearest_distance;
                unit.d0_um = unit.radius_um / kFootprintRadiusInD0;
                for (std::size_t c = 0; c < n_channels; ++c)
                    if (footprint_at(unit, static_cast<int>(c), 0.0).gain > 0)
                        unit.candidates.push_back(static_cast<int>(c));
            }
            for (int c : unit.candidates) {
                const FootprintEntry entry = footprint_at(unit, c, 0.0);
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
                    samples.push_back(entry.gain *
                                      sample_waveform(unit.waveform, static_cast<double>(k) * entry.inv_stretch));
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

            GroundTruthUnit& t = truth[static_cast<std::size_t>(id)];
            t.id = id;
            t.peak_channel = unit.peak_channel;
            t.snr = snr;
            t.rate_hz = rate_hz;
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
                    unit.poisson_rate_per_sample = hazard_per_sample(unit, highest_rate);
                }
                t.tuning = unit.tuning;
            }
            spike_queue.push({unit.rng.exponential(unit.poisson_rate_per_sample), id});
        }
    }

    /// The canonical waveform at a time in samples from its trough (0 outside the template).
    double sample_waveform(const std::vector<float>& waveform, double samples) const {
        const double x = samples * samples_to_table + table_zero;
        if (x < 0 || x >= static_cast<double>(waveform.size() - 1))
            return 0.0;
        const std::size_t i = static_cast<std::size_t>(x);
        const double fraction = x - static_cast<double>(i);
        return waveform[i] + fraction * (waveform[i + 1] - waveform[i]);
    }

    /// Adds one spike with its soma trough at time (samples) into the accumulator starting at frame acc_start.
    void render_spike(const UnitModel& unit, double time, double amplitude, std::uint64_t acc_start) {
        const std::vector<FootprintEntry>* footprint = &unit.footprint;
        if (drifting) {
            const double offset = drift_offset_um(time);
            scratch_footprint.clear();
            for (int c : unit.candidates) {
                const FootprintEntry entry = footprint_at(unit, c, offset);
                if (entry.gain > 0)
                    scratch_footprint.push_back(entry);
            }
            footprint = &scratch_footprint;
        }
        // Each contact gets only the frames its (delayed, widened) template covers; the clamp to the spike's
        // extent keeps rounding from ever reaching outside the accumulator.
        const std::int64_t first = static_cast<std::int64_t>(std::ceil(time)) - pre_extent;
        const std::int64_t last = static_cast<std::int64_t>(std::floor(time)) + post_extent;
        const float* waveform = unit.waveform.data();
        const double table_end = static_cast<double>(unit.waveform.size() - 1);
        const float limit = static_cast<float>(table_end);
        for (const FootprintEntry& entry : *footprint) {
            const double trough = time + entry.delay;
            const double step = samples_to_table * entry.inv_stretch; // table steps per sample
            const std::int64_t begin =
                std::max(first, static_cast<std::int64_t>(std::ceil(trough - table_zero / step)));
            const std::int64_t end =
                std::min(last + 1, static_cast<std::int64_t>(std::ceil(trough + (table_end - table_zero) / step)));
            if (begin >= end)
                continue;
            const float start = static_cast<float>((static_cast<double>(begin) - trough) * step + table_zero);
            const float step_f = static_cast<float>(step);
            const float gain = static_cast<float>(amplitude * entry.gain);
            float* column = accumulator.data() +
                            static_cast<std::size_t>(begin - static_cast<std::int64_t>(acc_start)) * n_channels +
                            static_cast<std::size_t>(entry.channel);
            for (std::int64_t k = 0; k < end - begin; ++k, column += n_channels) {
                const float x = start + static_cast<float>(k) * step_f;
                if (x < 0.0f || x >= limit)
                    continue;
                const std::size_t i = static_cast<std::size_t>(x);
                const float fraction = x - static_cast<float>(i);
                *column += gain * (waveform[i] + fraction * (waveform[i + 1] - waveform[i]));
            }
        }
    }

    void generate_block() {
        const std::uint64_t n_frames = recording.n_frames;
        block_start = next_block_start;
        block_length = static_cast<std::size_t>(std::min<std::uint64_t>(kBlockFrames, n_frames - block_start));
        block_offset = 0;
        next_block_start = block_start + block_length;

        // Render every spike whose support starts inside this block; the accumulator reaches far enough past the
        // block for its whole template, and the overhang is carried into the next block below.
        const double horizon = static_cast<double>(block_start + kBlockFrames + static_cast<std::uint64_t>(pre_extent));
        while (!spike_queue.empty() && spike_queue.top().time < horizon) {
            const QueuedSpike spike = spike_queue.top();
            spike_queue.pop();
            UnitModel& unit = units[static_cast<std::size_t>(spike.unit)];
            if (unit.tuning.tuned) {
                // Thinning: candidates arrive at the highest possible hazard and survive with the ratio of the
                // hazard at their time; a rejected candidate is not a spike, so no refractory period follows it.
                const double hazard = hazard_per_sample(unit, tuned_rate_hz(unit, spike.time));
                if (unit.rng.uniform() * unit.poisson_rate_per_sample >= hazard) {
                    spike_queue.push({spike.time + unit.rng.exponential(unit.poisson_rate_per_sample), spike.unit});
                    continue;
                }
            }
            const double jitter = std::exp(kAmplitudeJitterSigma * unit.rng.normal());
            spike_queue.push({spike.time + unit.refractory_samples + unit.rng.exponential(unit.poisson_rate_per_sample),
                              spike.unit});
            const bool inside = spike.time - static_cast<double>(pre_extent) >= 0.0 &&
                                spike.time + static_cast<double>(post_extent) < static_cast<double>(n_frames);
            if (!inside)
                continue;
            render_spike(unit, spike.time, unit.amplitude_uv * jitter, block_start);
            const double peak_delay = footprint_at(unit, unit.peak_channel, drift_offset_um(spike.time)).delay;
            const double trough = std::round(spike.time + peak_delay);
            pending_truth.push({{static_cast<std::uint64_t>(trough), spike.unit}});
            ++truth[static_cast<std::size_t>(spike.unit)].n_spikes;
        }

        noise.add(accumulator.data(), block_length);

        // Round half away from zero with saturation, clearing the accumulator on the way.
        const float to_bits = static_cast<float>(1.0 / config.microvolts_per_bit);
        const std::size_t count = block_length * n_channels;
        float* __restrict source = accumulator.data();
        std::int16_t* __restrict out = block.data();
        for (std::size_t i = 0; i < count; ++i) {
            const float bits = std::clamp(source[i] * to_bits, -32768.0f, 32767.0f);
            out[i] = static_cast<std::int16_t>(bits + (bits >= 0.0f ? 0.5f : -0.5f));
            source[i] = 0.0f;
        }

        // Carry the overhang of spikes rendered past the block to the front.
        const std::size_t block_values = kBlockFrames * n_channels;
        const std::size_t carried = accumulator.size() - block_values;
        std::memmove(accumulator.data(), accumulator.data() + block_values, carried * sizeof(float));
        // [carried, block_values) was cleared by the conversion (the last block needs nothing more).
        const std::size_t stale = std::max(carried, block_values);
        std::fill(accumulator.begin() + static_cast<std::ptrdiff_t>(stale), accumulator.end(), 0.0f);
    }
};

Simulator::Simulator(const SimulationConfig& config, const probe::Probe& probe) {
    check_config(config, probe);
    impl_ = std::make_unique<Impl>(config, probe);
}

Simulator::~Simulator() = default;

const io::RecordingInfo& Simulator::info() const {
    return impl_->recording;
}

std::size_t Simulator::read(std::int16_t* dst, std::size_t max_frames) {
    Impl& s = *impl_;
    std::size_t produced = 0;
    while (produced < max_frames) {
        if (s.block_offset == s.block_length) {
            if (s.next_block_start >= s.recording.n_frames)
                break;
            s.generate_block();
        }
        const std::size_t take = std::min(max_frames - produced, s.block_length - s.block_offset);
        std::memcpy(dst + produced * s.n_channels, s.block.data() + s.block_offset * s.n_channels,
                    take * s.n_channels * sizeof(std::int16_t));
        s.block_offset += take;
        produced += take;
    }
    s.frames_returned += produced;
    return produced;
}

std::vector<GroundTruthSpike> Simulator::take_spikes() {
    Impl& s = *impl_;
    std::vector<GroundTruthSpike> spikes;
    while (!s.pending_truth.empty() && s.pending_truth.top().spike.sample < s.frames_returned) {
        spikes.push_back(s.pending_truth.top().spike);
        s.pending_truth.pop();
    }
    return spikes;
}

std::vector<KinematicsSample> Simulator::take_kinematics() {
    Impl& s = *impl_;
    std::vector<KinematicsSample> samples;
    if (!s.recorded_trajectory)
        return samples;
    const double frames_returned = static_cast<double>(s.frames_returned);
    while (static_cast<double>(s.next_kinematics_step) * kKinematicsStepS * s.config.sample_rate < frames_returned) {
        samples.push_back(s.recorded_trajectory->at(static_cast<double>(s.next_kinematics_step) * kKinematicsStepS));
        ++s.next_kinematics_step;
    }
    return samples;
}

const std::vector<GroundTruthUnit>& Simulator::units() const {
    return impl_->truth;
}

void simulate_to_folder(const SimulationConfig& config, const probe::Probe& probe, const std::filesystem::path& out_dir,
                        const std::function<void(double)>& progress) {
    Simulator simulator(config, probe); // checks the configuration before anything is created
    const std::filesystem::path truth_dir = out_dir / "ground_truth";
    ensure_directory(out_dir);
    ensure_directory(truth_dir);
    if (progress)
        progress(0.0);

    const io::RecordingInfo& info = simulator.info();
    io::SpikeGlxWriter writer(out_dir / "recording.bin", config.n_channels, config.sample_rate,
                              config.microvolts_per_bit);
    io::NpyAppendWriter<std::uint64_t> times(truth_dir / "spike_times.npy");
    io::NpyAppendWriter<std::int32_t> unit_ids(truth_dir / "spike_units.npy");

    // ~32 MB of frames per chunk whatever the channel count.
    const std::size_t chunk_frames = std::max<std::size_t>(
        1, (std::size_t{32} << 20) / (sizeof(std::int16_t) * static_cast<std::size_t>(config.n_channels)));
    std::vector<std::int16_t> chunk(chunk_frames * static_cast<std::size_t>(config.n_channels));
    std::uint64_t written = 0;
    std::vector<std::uint64_t> spike_times;
    std::vector<std::int32_t> spike_units;
    // 40 bytes per 10 ms (14 MB per hour): kept until the end because the .npy header needs the row count.
    std::vector<double> kinematics;
    while (true) {
        const std::size_t got = simulator.read(chunk.data(), chunk_frames);
        if (got == 0)
            break;
        writer.write(chunk.data(), got);
        written += got;
        spike_times.clear();
        spike_units.clear();
        for (const GroundTruthSpike& spike : simulator.take_spikes()) {
            spike_times.push_back(spike.sample);
            spike_units.push_back(spike.unit);
        }
        for (const KinematicsSample& k : simulator.take_kinematics())
            kinematics.insert(kinematics.end(), {k.time_s, k.x_cm, k.y_cm, k.vx_cm_s, k.vy_cm_s});
        times.append(spike_times.data(), spike_times.size());
        unit_ids.append(spike_units.data(), spike_units.size());
        if (progress)
            progress(static_cast<double>(written) / static_cast<double>(info.n_frames));
    }
    writer.finish();
    times.finish();
    unit_ids.finish();
    probe::write_probeinterface(probe, out_dir / "probe.json");

    std::ostringstream table;
    table << "unit_id\tpeak_channel\tsnr\trate_hz\tn_spikes\n";
    for (const GroundTruthUnit& unit : simulator.units()) {
        char line[160];
        std::snprintf(line, sizeof line, "%d\t%d\t%.4f\t%.5f\t%llu\n", unit.id, unit.peak_channel, unit.snr,
                      unit.rate_hz, static_cast<unsigned long long>(unit.n_spikes));
        table << line;
    }
    write_text_file(truth_dir / "units.tsv", table.str());

    if (config.behavior) {
        io::write_npy(truth_dir / "kinematics.npy", kinematics.data(), {kinematics.size() / 5, 5});
        std::ostringstream tuning;
        tuning << "unit_id\ttuned\tbaseline_hz\tdepth_hz_per_cm_s\tpreferred_direction_rad\n";
        for (const GroundTruthUnit& unit : simulator.units()) {
            char line[160];
            std::snprintf(line, sizeof line, "%d\t%d\t%.5f\t%.6f\t%.6f\n", unit.id, unit.tuning.tuned ? 1 : 0,
                          unit.tuning.baseline_hz, unit.tuning.depth_hz_per_cm_s, unit.tuning.preferred_direction_rad);
            tuning << line;
        }
        write_text_file(truth_dir / "tuning.tsv", tuning.str());
    }

    nlohmann::json meta = {
        {"sample_rate", config.sample_rate},
        {"n_channels", config.n_channels},
        {"duration_s", config.duration_s},
        {"n_frames", info.n_frames},
        {"seed", config.seed},
        {"n_units", simulator.units().size()},
        {"noise_uv", config.noise_uv},
        {"microvolts_per_bit", config.microvolts_per_bit},
        {"drift_um_per_s", config.drift_um_per_s},
    };
    if (config.behavior) {
        const auto& units = simulator.units();
        meta["behavior"] = {
            {"task", "random-target minimum-jerk reaches"},
            {"kinematics_step_s", kKinematicsStepS},
            {"workspace_half_width_cm", kWorkspaceHalfWidthCm},
            {"max_speed_cm_s", kMaxCursorSpeedCmS},
            {"tuned_fraction", config.tuned_fraction},
            {"n_tuned_units", std::count_if(units.begin(), units.end(), [](const auto& u) { return u.tuning.tuned; })},
        };
    }
    write_text_file(truth_dir / "info.json", meta.dump(2) + "\n");
    if (progress)
        progress(1.0);
}

} // namespace spikeline::sim
