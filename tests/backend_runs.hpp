#pragma once
// Running a backend over a recording held in memory, and comparing its events: shared by the backend tests.
#include "backend/backend.hpp"

#include <algorithm>
#include <cstdint>
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

} // namespace spikeline::testing
