#pragma once
// A simulated recording held in memory (default probe, simulator defaults otherwise), for the backend tests.
#include "probe/probe.hpp"
#include "sim/simulator.hpp"

#include <cstdint>
#include <vector>

namespace spikeline::testing {

inline std::vector<std::int16_t> simulate_in_memory(int channels, double seconds, std::uint64_t seed) {
    sim::SimulationConfig config;
    config.n_channels = channels;
    config.duration_s = seconds;
    config.seed = seed;
    sim::Simulator simulator(config, probe::default_probe(channels));
    std::vector<std::int16_t> data(simulator.info().n_frames * static_cast<std::size_t>(channels));
    for (std::size_t done = 0; done < simulator.info().n_frames;)
        done += simulator.read(&data[done * static_cast<std::size_t>(channels)], simulator.info().n_frames - done);
    return data;
}

} // namespace spikeline::testing
