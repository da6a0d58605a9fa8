// Cycle figures of the RTL engine measured by the harness on a simulated recording: sustained samples per clock
// (without and with back-pressure), latency from a sample's entry to its detection event and to its sorted spike
// (the sorting stage with a full classifier table: 8 entries on every channel), and Verilator's simulation speed.
// usage: spikeline_rtl_cycles [CHANNELS (64 or 1024, default 1024)] [SECONDS of recording (default 0.2)] [burst]
// burst: all-channel artefacts (+-3000 LSB, 10 samples, alternating sign between channels, every 50 ms from 0.1 s)
// added to the recording, measured at full input rate and at the line rate (one frame per 8333 clocks), with
// artefact rejection on and off: input stall clocks and the latency of events.
#include "backend/detect_settings.hpp"
#include "detect_core_sim.hpp"
#include "probe/probe.hpp"
#include "sim/simulator.hpp"
#include "sort/sort_settings.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr double kClockHz = 250e6;

std::vector<std::int16_t> simulate(int channels, double seconds) {
    spikeline::sim::SimulationConfig config;
    config.n_channels = channels;
    config.duration_s = seconds;
    config.seed = 42;
    spikeline::sim::Simulator simulator(config, spikeline::probe::default_probe(channels));
    std::vector<std::int16_t> data(simulator.info().n_frames * static_cast<std::size_t>(channels));
    for (std::size_t done = 0; done < simulator.info().n_frames;)
        done += simulator.read(&data[done * static_cast<std::size_t>(channels)], simulator.info().n_frames - done);
    return data;
}

std::uint64_t percentile(std::vector<std::uint64_t> values, double fraction) {
    if (values.empty())
        return 0;
    const auto index = static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1));
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
    return values[index];
}

// A sorter whose every channel holds the stage's 8 entries (the most classification work), random basis and centroids.
std::shared_ptr<spikeline::HwSortParams> full_sorter(const spikeline::rtl::CoreParams& params) {
    auto sorter = spikeline::sort::make_sort_params(spikeline::sort::SortSettings{},
                                                    spikeline::probe::default_probe(params.n_channels), 30000, params);
    std::mt19937 rng(1);
    std::uniform_int_distribution<int> basis(-8000, 8000), centroid(-5000, 5000);
    for (auto& component : sorter->basis)
        for (auto& weight : component)
            weight = static_cast<std::int16_t>(basis(rng));
    for (int ch = 0; ch < params.n_channels; ++ch) {
        sorter->n_entries[ch] = spikeline::HwSortConfig::max_entries;
        for (int i = 0; i < spikeline::HwSortConfig::max_entries; ++i) {
            auto& entry = sorter->entries[ch][i];
            entry.unit = i;
            entry.template_id = i;
            entry.gate = std::int64_t{1} << 40;
            for (auto& value : entry.centroid)
                value = centroid(rng);
        }
    }
    return sorter;
}

void add_bursts(std::vector<std::int16_t>& data, int channels, double sample_rate) {
    const std::size_t frames = data.size() / static_cast<std::size_t>(channels);
    const auto every = static_cast<std::size_t>(0.05 * sample_rate);
    for (auto start = static_cast<std::size_t>(0.1 * sample_rate); start + 10 < frames; start += every)
        for (std::size_t f = start; f < start + 10; ++f)
            for (int ch = 0; ch < channels; ++ch) {
                auto& v = data[f * static_cast<std::size_t>(channels) + static_cast<std::size_t>(ch)];
                v = static_cast<std::int16_t>(std::clamp(v + (ch % 2 ? 3000 : -3000), -32768, 32767));
            }
}

void measure(const spikeline::rtl::CoreParams& params, const std::vector<std::int16_t>& data, double backpressure,
             std::uint64_t frame_period = 0) {
    spikeline::rtl::SimOptions options;
    options.backpressure_probability = backpressure;
    options.frame_period_clocks = frame_period;
    auto core = spikeline::rtl::make_detect_core_sim(params, options);
    core->configure_sorting(*full_sorter(params), true);
    std::vector<spikeline::hw::SpikeEvent> events;
    const auto frames = data.size() / static_cast<std::size_t>(params.n_channels);
    const auto start = std::chrono::steady_clock::now();
    core->process(data.data(), frames, events);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto& stats = core->stats();
    const double clocks = static_cast<double>(stats.last_sample_cycle - stats.first_sample_cycle + 1);
    const double per_clock = static_cast<double>(stats.samples_in) / clocks;
    std::printf("m_axis back-pressure %.0f %%, %s: %zu frames x %d channels, %.4f samples/clock sustained, "
                "%llu input stall clocks\n",
                100 * backpressure, frame_period ? "line rate" : "full rate", frames, params.n_channels, per_clock,
                static_cast<unsigned long long>(stats.input_stalls));
    std::printf("  simulation speed: %.2f M samples/s (%.2f M clocks/s)\n",
                static_cast<double>(stats.samples_in) / seconds / 1e6,
                static_cast<double>(stats.cycles) / seconds / 1e6);
    for (const bool sorted : {false, true}) {
        const auto& latency = sorted ? stats.spike_latency_cycles : stats.event_latency_cycles;
        if (latency.empty())
            continue;
        const auto p50 = percentile(latency, 0.5), p99 = percentile(latency, 0.99), worst = percentile(latency, 1.0);
        std::printf("  latency sample entry -> %s (%zu): median %llu clocks (%.1f us at 250 MHz), "
                    "p99 %llu (%.1f us), max %llu (%.1f us)\n",
                    sorted ? "sorted spike" : "event", latency.size(), static_cast<unsigned long long>(p50),
                    static_cast<double>(p50) / kClockHz * 1e6, static_cast<unsigned long long>(p99),
                    static_cast<double>(p99) / kClockHz * 1e6, static_cast<unsigned long long>(worst),
                    static_cast<double>(worst) / kClockHz * 1e6);
    }
    const int frames_waited = params.dedup_window + params.align_window;
    std::printf("  (an event leaves once frame peak + %d has been referenced: %d frames = %d clocks; a sorted spike "
                "once frame peak + post has been referenced and the event has arrived)\n",
                frames_waited - 1, frames_waited, frames_waited * params.n_channels);
}

} // namespace

int main(int argc, char** argv) {
    const int channels = argc > 1 ? std::atoi(argv[1]) : 1024;
    const double seconds = argc > 2 ? std::atof(argv[2]) : 0.2;
    const bool burst = argc > 3 && std::string(argv[3]) == "burst";
    auto data = simulate(channels, seconds);
    if (!burst) {
        auto params = spikeline::make_detect_params(spikeline::DetectSettings{},
                                                    spikeline::probe::default_probe(channels), 30000);
        params->warmup_frames = 600; // 20 ms: leave most of the short recording for detection
        measure(*params, data, 0.0);
        measure(*params, data, 0.5);
        return 0;
    }
    add_bursts(data, channels, 30000);
    for (const bool rejection : {true, false}) {
        spikeline::DetectSettings settings;
        settings.artifact_rejection = rejection;
        auto params = spikeline::make_detect_params(settings, spikeline::probe::default_probe(channels), 30000);
        params->warmup_frames = 600;
        std::printf("artefact rejection %s\n", rejection ? "on" : "off");
        measure(*params, data, 0.0);
        measure(*params, data, 0.0, 8333);
    }
    return 0;
}
