#pragma once
// Running a backend over a recording held in memory, and comparing its events: shared by the backend tests.
#include "backend/backend.hpp"

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace spikeline::testing {

/// Every event of `data` (frames of `channels` samples), given to the backend in blocks of `block` frames.
inline std::vector<SpikeEvent> run(Backend& backend, const std::vector<std::int16_t>& data, int channels,
                                   std::size_t block) {
    std::vector<SpikeEvent> events;
    const std::size_t frames = data.size() / static_cast<std::size_t>(channels);
    for (std::size_t f = 0; f < frames; f += block)
        backend.process(&data[f * static_cast<std::size_t>(channels)], std::min(block, frames - f), events);
    backend.finish(events);
    return events;
}

inline std::vector<SpikeEvent> reference_events(const HwParams& params, const std::vector<std::int16_t>& data) {
    auto reference = make_reference_backend(params);
    return run(*reference, data, params.n_channels, 1 << 20);
}

inline void expect_same(const std::vector<SpikeEvent>& expected, const std::vector<SpikeEvent>& actual) {
    ASSERT_EQ(expected.size(), actual.size());
    for (std::size_t i = 0; i < expected.size(); ++i)
        ASSERT_EQ(expected[i], actual[i])
            << "first difference at event " << i << ": expected sample " << expected[i].sample << " channel "
            << expected[i].channel << ", got " << actual[i].sample << " channel " << actual[i].channel;
}

/// 1 s at 30 kHz of Gaussian noise (sigma 30 LSB) with the hard cases: a full-scale square wave that saturates the
/// filter states, every channel spiking in the same frame every 0.1 s (an artefact: its size grows along the shank, so
/// that half of the channels still cross after the common reference), and channel 7 stuck at the rail.
inline std::vector<std::int16_t> saturating_recording(int channels) {
    constexpr std::size_t frames = 30000;
    std::mt19937 rng(3);
    std::normal_distribution<double> noise(0, 30);
    std::vector<std::int16_t> data(frames * static_cast<std::size_t>(channels));
    for (std::size_t f = 0; f < frames; ++f)
        for (int ch = 0; ch < channels; ++ch) {
            double v = noise(rng);
            if (f > 10000 && f < 12000) // full-scale square wave: saturates the filter states
                v = ((f / 50) % 2) ? 32767 : -32768;
            if (f % 3000 == 1500) // every channel spikes in the same frame
                v = -2000 - ch * 40;
            if (ch == 7 && f > 20000) // one channel stuck at the rail
                v = -32768;
            data[f * static_cast<std::size_t>(channels) + static_cast<std::size_t>(ch)] =
                static_cast<std::int16_t>(std::clamp(v, -32768.0, 32767.0));
        }
    return data;
}

} // namespace spikeline::testing
