#pragma once
// The simulated noise: per-channel 1/f-like noise, local sources shared by neighbouring contacts, per-shank common
// mode with 50/60 Hz line noise and a slow LFP. Its 300-6000 Hz band is the reference of every SNR.
#include "dsp/filter_design.hpp"
#include "probe/probe.hpp"
#include "sim/random.hpp"
#include "sim/simulator.hpp"

#include <array>
#include <complex>
#include <cstddef>
#include <vector>

namespace spikeline::sim {

using Sections = std::array<dsp::Biquad, 2>;

// The 300-6000 Hz band-pass in which the noise level and the SNRs are defined.
Sections band_sections(double sample_rate);

// 1/f-like colouring of a white input: white + three first-order low-passes fed by the same input, with corner
// frequencies spread over the band and DC levels falling as 1/sqrt(corner) (a staircase approximation of pink).
struct ColourFilter {
    float white = 1.0f;
    std::array<float, 3> pole{};
    std::array<float, 3> gain{};

    explicit ColourFilter(double sample_rate);
    std::vector<double> impulse_response(std::size_t length) const;
};

// The noise of every channel, in microvolts, generated frame by frame with state kept across blocks.
class NoiseModel {
public:
    NoiseModel(const SimulationConfig& config, const probe::Probe& probe);

    // Band-passed noise RMS of channel c, in microvolts (the SNR reference).
    double level_uv(int channel) const { return level_uv_[static_cast<std::size_t>(channel)]; }

    // Adds the next n_frames frames of noise to acc (time-major, n_channels per frame).
    void add(float* acc, std::size_t n_frames);

private:
    void add_channel_frame(float* out, const float* drive);

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
        std::size_t begin, end, shank; // consecutive channels on one shank
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

} // namespace spikeline::sim
