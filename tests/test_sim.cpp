#include "sim/simulator.hpp"

#include "dsp/filter_design.hpp"
#include "io/npy.hpp"
#include "io/recording.hpp"
#include "sim/noise.hpp"
#include "sim/random.hpp"
#include "sim/units.hpp"
#include "sim/waveform.hpp"
#include "util/errors.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numbers>
#include <numeric>
#include <sstream>
#include <string>
#include <unistd.h>

namespace {

using namespace spikeline;
using sim::GroundTruthSpike;
using sim::SimulationConfig;
using sim::Simulator;

/// Shanks of two columns 32 um apart with 20 um vertical pitch, shanks 250 um apart (built by hand so these tests
/// do not depend on the probe library).
probe::Probe make_probe(int n_channels, int n_shanks) {
    probe::Probe probe;
    probe.name = "test";
    const int per_shank = n_channels / n_shanks;
    for (int c = 0; c < n_channels; ++c) {
        const int shank = c / per_shank;
        const int index = c % per_shank;
        probe::Contact contact;
        contact.shank = shank;
        contact.x_um = 250.0 * shank + 32.0 * (index % 2);
        contact.y_um = 20.0 * (index / 2);
        // (built with append: GCC 12 warns falsely about "literal" + std::string under -O3)
        contact.id = std::to_string(shank);
        contact.id.append(":").append(std::to_string(index));
        probe.contacts.push_back(contact);
    }
    return probe;
}

SimulationConfig small_config(double duration_s = 3.0) {
    SimulationConfig config;
    config.n_channels = 64;
    config.duration_s = duration_s;
    config.seed = 11;
    return config;
}

struct Simulated {
    std::vector<std::int16_t> frames;
    std::vector<GroundTruthSpike> spikes;
    std::vector<sim::GroundTruthUnit> units;
};

Simulated run(const SimulationConfig& config, const probe::Probe& probe, std::size_t chunk_frames = 4096) {
    Simulator simulator(config, probe);
    Simulated result;
    const std::size_t n_channels = static_cast<std::size_t>(config.n_channels);
    result.frames.resize(simulator.info().n_frames * n_channels);
    std::size_t position = 0;
    while (true) {
        const std::size_t got =
            simulator.read(result.frames.data() + position * n_channels,
                           std::min<std::size_t>(chunk_frames, simulator.info().n_frames - position));
        if (got == 0)
            break;
        position += got;
        for (const GroundTruthSpike& spike : simulator.take_spikes())
            result.spikes.push_back(spike);
    }
    EXPECT_EQ(position, simulator.info().n_frames);
    result.units = simulator.units();
    return result;
}

/// The ground-truth spike times of one unit.
std::vector<std::uint64_t> spike_train(const Simulated& simulated, int unit) {
    std::vector<std::uint64_t> times;
    for (const GroundTruthSpike& spike : simulated.spikes)
        if (spike.unit == unit)
            times.push_back(spike.sample);
    return times;
}

std::vector<double> channel_trace(const std::vector<std::int16_t>& frames, int n_channels, int channel,
                                  double microvolts_per_bit) {
    std::vector<double> trace(frames.size() / static_cast<std::size_t>(n_channels));
    for (std::size_t n = 0; n < trace.size(); ++n)
        trace[n] =
            frames[n * static_cast<std::size_t>(n_channels) + static_cast<std::size_t>(channel)] * microvolts_per_bit;
    return trace;
}

std::vector<double> band_passed(const std::vector<double>& trace, double sample_rate) {
    return dsp::filter(dsp::design_bandpass(sample_rate, 300.0, 6000.0), trace);
}

double rms(const std::vector<double>& values, std::size_t skip) {
    double power = 0;
    for (std::size_t i = skip; i < values.size(); ++i)
        power += values[i] * values[i];
    return std::sqrt(power / static_cast<double>(values.size() - skip));
}

TEST(Simulator, IdenticalForAnyReadChunkSize) {
    const probe::Probe probe = make_probe(64, 2);
    const Simulated a = run(small_config(), probe, 1000);
    const Simulated b = run(small_config(), probe, 7777);
    ASSERT_EQ(a.frames.size(), b.frames.size());
    EXPECT_TRUE(a.frames == b.frames);
    ASSERT_EQ(a.spikes.size(), b.spikes.size());
    for (std::size_t i = 0; i < a.spikes.size(); ++i) {
        EXPECT_EQ(a.spikes[i].sample, b.spikes[i].sample);
        EXPECT_EQ(a.spikes[i].unit, b.spikes[i].unit);
    }
    EXPECT_GT(a.spikes.size(), 50u);
}

TEST(Simulator, DifferentSeedsDiffer) {
    const probe::Probe probe = make_probe(64, 2);
    SimulationConfig config = small_config(1.0);
    const Simulated a = run(config, probe);
    config.seed = 12;
    const Simulated b = run(config, probe);
    std::size_t equal = 0;
    for (std::size_t i = 0; i < a.frames.size(); ++i)
        equal += a.frames[i] == b.frames[i];
    EXPECT_LT(static_cast<double>(equal), 0.2 * static_cast<double>(a.frames.size()));
}

TEST(Simulator, InfoDescribesTheRecording) {
    SimulationConfig config = small_config(2.5);
    config.sample_rate = 20000;
    Simulator simulator(config, make_probe(64, 1));
    EXPECT_EQ(simulator.info().n_channels, 64);
    EXPECT_EQ(simulator.info().n_frames, 50000u);
    EXPECT_DOUBLE_EQ(simulator.info().sample_rate, 20000.0);
    EXPECT_DOUBLE_EQ(simulator.info().microvolts_per_bit, config.microvolts_per_bit);
    EXPECT_EQ(simulator.units().size(), 19u); // 3 per 10 channels
}

TEST(Simulator, GroundTruthIsSortedAndInRange) {
    const SimulationConfig config = small_config();
    const Simulated result = run(config, make_probe(64, 2));
    const auto n_frames = static_cast<std::uint64_t>(config.duration_s * config.sample_rate);
    std::vector<std::uint64_t> counts(result.units.size(), 0);
    for (std::size_t i = 0; i < result.spikes.size(); ++i) {
        const GroundTruthSpike& spike = result.spikes[i];
        EXPECT_LT(spike.sample, n_frames);
        ASSERT_GE(spike.unit, 0);
        ASSERT_LT(static_cast<std::size_t>(spike.unit), result.units.size());
        ++counts[static_cast<std::size_t>(spike.unit)];
        if (i > 0) {
            const GroundTruthSpike& previous = result.spikes[i - 1];
            EXPECT_TRUE(previous.sample < spike.sample ||
                        (previous.sample == spike.sample && previous.unit < spike.unit))
                << "at " << i;
        }
    }
    for (std::size_t u = 0; u < result.units.size(); ++u) {
        EXPECT_EQ(result.units[u].id, static_cast<int>(u));
        EXPECT_EQ(result.units[u].n_spikes, counts[u]);
        EXPECT_GE(result.units[u].peak_channel, 0);
        EXPECT_LT(result.units[u].peak_channel, 64);
    }
}

TEST(Simulator, RatesMatchTheConfiguredOnes) {
    SimulationConfig config = small_config(20.0);
    config.n_channels = 32;
    const Simulated result = run(config, make_probe(32, 1));
    double expected_total = 0, actual_total = 0;
    for (const sim::GroundTruthUnit& unit : result.units) {
        EXPECT_GE(unit.rate_hz, 0.1);
        EXPECT_LE(unit.rate_hz, 50.0);
        const double expected = unit.rate_hz * config.duration_s;
        EXPECT_NEAR(static_cast<double>(unit.n_spikes), expected, 5.0 * std::sqrt(expected) + 3.0) << unit.id;
        expected_total += expected;
        actual_total += static_cast<double>(unit.n_spikes);
    }
    EXPECT_NEAR(actual_total / expected_total, 1.0, 0.1);
}

TEST(Simulator, RefractoryPeriodIsRespected) {
    SimulationConfig config = small_config(5.0);
    config.n_units = 10;
    const Simulated result = run(config, make_probe(64, 2));
    std::map<int, std::uint64_t> last;
    std::uint64_t min_interval = ~std::uint64_t{0};
    for (const GroundTruthSpike& spike : result.spikes) {
        if (const auto it = last.find(spike.unit); it != last.end())
            min_interval = std::min(min_interval, spike.sample - it->second);
        last[spike.unit] = spike.sample;
    }
    // 1.5 ms at 30 kHz, less one sample of rounding.
    EXPECT_GE(min_interval, 44u);
}

// Bursts (--bursts): bursty units fire runs of spikes 3-8 ms apart; the other units' trains are exactly those of the
// same simulation without bursts, and so is the whole output with the option at 0.
TEST(Simulator, BurstyUnitsFireRunsOfSpikesAndTheOthersAreUnchanged) {
    SimulationConfig config = small_config(20.0);
    config.n_units = 20;
    const probe::Probe probe = make_probe(64, 2);
    const Simulated plain = run(config, probe);
    config.burst_fraction = 0.5;
    const Simulated bursting = run(config, probe);
    int n_bursty = 0;
    std::size_t bursty_spikes = 0, same_units_plain = 0;
    for (const sim::GroundTruthUnit& unit : bursting.units) {
        const std::vector<std::uint64_t> times = spike_train(bursting, unit.id);
        if (!unit.bursty) {
            EXPECT_EQ(times, spike_train(plain, unit.id)) << "unit " << unit.id;
            continue;
        }
        ++n_bursty;
        std::size_t in_burst = 0; // intervals of 3-8 ms (89-241 samples at 30 kHz, rounding included)
        for (std::size_t i = 1; i < times.size(); ++i)
            in_burst += times[i] - times[i - 1] >= 89 && times[i] - times[i - 1] <= 241;
        // A spike starts a burst of 2-4 with probability 0.15: about a fifth of the intervals are inside bursts.
        EXPECT_GE(static_cast<double>(in_burst), 0.12 * static_cast<double>(times.size())) << "unit " << unit.id;
        bursty_spikes += times.size();
        same_units_plain += spike_train(plain, unit.id).size();
    }
    EXPECT_GT(static_cast<double>(bursty_spikes), 1.1 * static_cast<double>(same_units_plain));
    EXPECT_GE(n_bursty, 5);
    EXPECT_LE(n_bursty, 15);
    EXPECT_NE(plain.frames, bursting.frames);
    config.burst_fraction = 0;
    EXPECT_EQ(run(config, probe).frames, plain.frames);
}

// Background units add small spikes on most contacts and leave the ground truth exactly as without them.
TEST(Simulator, BackgroundUnitsAddSmallSpikesThatAreNotInTheGroundTruth) {
    SimulationConfig config = small_config(5.0);
    config.n_units = 20;
    const probe::Probe probe = make_probe(64, 2);
    const Simulated plain = run(config, probe);
    config.n_background_units = 60;
    const Simulated background = run(config, probe);
    ASSERT_EQ(background.units.size(), plain.units.size());
    for (std::size_t u = 0; u < plain.units.size(); ++u) {
        EXPECT_EQ(background.units[u].peak_channel, plain.units[u].peak_channel);
        EXPECT_EQ(background.units[u].snr, plain.units[u].snr);
        EXPECT_EQ(background.units[u].n_spikes, plain.units[u].n_spikes);
    }
    EXPECT_EQ(background.spikes.size(), plain.spikes.size());
    for (std::size_t i = 0; i < plain.spikes.size(); ++i) {
        EXPECT_EQ(background.spikes[i].sample, plain.spikes[i].sample);
        EXPECT_EQ(background.spikes[i].unit, plain.spikes[i].unit);
    }
    // The noise does not depend on the units, so the difference is the background alone: spikes of at most SNR 2.5
    // (x the amplitude jitter, and where two overlap), on most contacts.
    std::vector<double> added(plain.frames.size());
    for (std::size_t i = 0; i < added.size(); ++i)
        added[i] = static_cast<double>(background.frames[i] - plain.frames[i]);
    int touched = 0;
    double largest_trough = 0;
    for (int ch = 0; ch < 64; ++ch) {
        std::vector<double> trace(added.size() / 64);
        for (std::size_t n = 0; n < trace.size(); ++n)
            trace[n] = added[n * 64 + static_cast<std::size_t>(ch)] * config.microvolts_per_bit;
        const std::vector<double> filtered = band_passed(trace, config.sample_rate);
        const double trough = -*std::min_element(filtered.begin() + 3000, filtered.end());
        touched += trough > 0.1 * config.noise_uv;
        largest_trough = std::max(largest_trough, trough);
    }
    EXPECT_GE(touched, 58);
    EXPECT_GT(largest_trough, 1.0 * config.noise_uv);
    EXPECT_LT(largest_trough, 5.0 * config.noise_uv);
}

// At full shape variation about a tenth of the waveforms units leave on their contacts (band-passed, beyond 3-5 noise
// sigmas) are non-negative (maximum above |minimum|), the share reported for cortical recordings (Sibille et al.
// 2023, doi:10.1038/s42003-023-05328-6); without it nearly none.
TEST(Simulator, ShapeVariationMakesATenthOfWaveformsNonNegative) {
    auto non_negative_share = [](double variation, double sigmas) {
        SimulationConfig config;
        config.seed = 7;
        config.shape_variation = variation;
        const probe::Probe probe = probe::default_probe(config.n_channels);
        const sim::NoiseModel noise(config, probe);
        std::vector<sim::UnitModel> units;
        std::vector<sim::GroundTruthUnit> truth(static_cast<std::size_t>(config.n_channels * 3 / 10));
        sim::create_units(config, probe, noise, 0.0, units, truth);
        const double to_table = sim::kTableStepsPerMs * 1000.0 / config.sample_rate;
        const double table_zero = sim::kWaveformPreMs * sim::kTableStepsPerMs;
        const auto band = dsp::design_bandpass(config.sample_rate, 300.0, 6000.0);
        int waveforms = 0, non_negative = 0;
        for (const sim::UnitModel& unit : units)
            for (const sim::FootprintEntry& entry : unit.footprint) {
                std::vector<double> samples;
                for (int k = -60; k <= 150; ++k)
                    samples.push_back(unit.amplitude_uv * entry.gain *
                                      sim::contact_waveform(unit, entry, static_cast<double>(k) * entry.inv_stretch,
                                                            to_table, table_zero));
                const std::vector<double> filtered = dsp::filter(band, samples);
                const double high = *std::max_element(filtered.begin(), filtered.end());
                const double low = -*std::min_element(filtered.begin(), filtered.end());
                if (std::max(high, low) < sigmas * noise.level_uv(entry.channel))
                    continue;
                ++waveforms;
                non_negative += high > low;
            }
        return static_cast<double>(non_negative) / waveforms;
    };
    for (double sigmas : {3.0, 5.0}) {
        EXPECT_LT(non_negative_share(0.0, sigmas), 0.01) << sigmas;
        EXPECT_GT(non_negative_share(1.0, sigmas), 0.06) << sigmas;
        EXPECT_LT(non_negative_share(1.0, sigmas), 0.15) << sigmas;
    }
}

TEST(Simulator, BandPassedNoiseMatchesTheConfiguredLevel) {
    SimulationConfig config = small_config(4.0);
    config.noise_only = true;
    config.noise_uv = 12.0;
    const Simulated result = run(config, make_probe(64, 2));
    EXPECT_TRUE(result.units.empty());
    EXPECT_TRUE(result.spikes.empty());
    const std::size_t skip = 6000; // filter start-up
    double mean_level = 0;
    std::vector<std::vector<double>> bands;
    for (int c = 0; c < config.n_channels; ++c) {
        const std::vector<double> raw = channel_trace(result.frames, config.n_channels, c, config.microvolts_per_bit);
        bands.push_back(band_passed(raw, config.sample_rate));
        const double level = rms(bands.back(), skip);
        EXPECT_NEAR(level / config.noise_uv, 1.0, 0.15) << "channel " << c;
        mean_level += level / config.n_channels;
        // Slow LFP and line noise dominate the raw signal; the band-pass removes them.
        EXPECT_GT(rms(raw, skip), 2.0 * level) << "channel " << c;
    }
    EXPECT_NEAR(mean_level / config.noise_uv, 1.0, 0.05);

    // Neighbouring contacts share some noise; contacts on different shanks share only the weak common mode.
    auto correlation = [&](int a, int b) {
        double ab = 0, aa = 0, bb = 0;
        for (std::size_t n = skip; n < bands[0].size(); ++n) {
            const double x = bands[static_cast<std::size_t>(a)][n], y = bands[static_cast<std::size_t>(b)][n];
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        return ab / std::sqrt(aa * bb);
    };
    EXPECT_GT(correlation(10, 12), 0.08);
    EXPECT_LT(correlation(10, 12), 0.5);
    EXPECT_LT(correlation(10, 42), correlation(10, 12));
}

TEST(Simulator, NoiseDoesNotDependOnTheUnits) {
    SimulationConfig config = small_config(1.0);
    config.noise_only = true;
    const probe::Probe probe = make_probe(64, 2);
    const Simulated a = run(config, probe);
    const Simulated b = run(config, probe);
    EXPECT_TRUE(a.frames == b.frames);
}

/// Spike-only signal: the recording with units minus the same seed without (the noise is identical).
std::vector<double> spikes_only(const Simulated& with_units, const Simulated& noise, int n_channels, int channel,
                                double microvolts_per_bit) {
    std::vector<double> a = channel_trace(with_units.frames, n_channels, channel, microvolts_per_bit);
    const std::vector<double> b = channel_trace(noise.frames, n_channels, channel, microvolts_per_bit);
    for (std::size_t i = 0; i < a.size(); ++i)
        a[i] -= b[i];
    return a;
}

TEST(Simulator, UnitSnrsMatchTheirDefinition) {
    SimulationConfig config = small_config(8.0);
    const probe::Probe probe = make_probe(64, 2);
    const Simulated recording = run(config, probe);
    config.noise_only = true;
    const Simulated noise = run(config, probe);

    std::size_t checked = 0;
    for (const sim::GroundTruthUnit& unit : recording.units) {
        EXPECT_GE(unit.snr, 3.0);
        EXPECT_LE(unit.snr, 20.0);
        if (unit.n_spikes < 10)
            continue;
        const int channel = unit.peak_channel;
        const std::vector<double> signal = band_passed(
            spikes_only(recording, noise, config.n_channels, channel, config.microvolts_per_bit), config.sample_rate);
        const double noise_rms =
            rms(band_passed(channel_trace(noise.frames, config.n_channels, channel, config.microvolts_per_bit),
                            config.sample_rate),
                6000);
        // Mean band-passed waveform around the ground-truth troughs.
        std::vector<double> mean(40, 0.0);
        for (const GroundTruthSpike& spike : recording.spikes) {
            if (spike.unit != unit.id)
                continue;
            for (std::size_t k = 0; k < mean.size(); ++k)
                mean[k] += signal[spike.sample - 10 + k] / static_cast<double>(unit.n_spikes);
        }
        const double measured = -*std::min_element(mean.begin(), mean.end()) / noise_rms;
        EXPECT_NEAR(measured / unit.snr, 1.0, 0.15) << "unit " << unit.id << " snr " << unit.snr;
        ++checked;
    }
    EXPECT_GE(checked, 8u);
}

// Shape variation (--shape-variation): away from the soma a unit's waveform turns into a second shape of its own, for
// some units a positive one; spike times stay those of the same simulation without it, and at 0 so does the output.
TEST(Simulator, ShapeVariationChangesFarWaveformsOnly) {
    SimulationConfig config = small_config(8.0);
    config.n_units = 40;
    const probe::Probe probe = make_probe(64, 2);
    const Simulated plain = run(config, probe);
    config.shape_variation = 1.0;
    const Simulated varied = run(config, probe);
    config.noise_only = true;
    const Simulated noise = run(config, probe);
    // The same spike trains; a ground-truth time is the trough on the peak contact, which may now be another one
    // (delays reach 0.3 ms).
    for (const sim::GroundTruthUnit& unit : plain.units) {
        const std::vector<std::uint64_t> a = spike_train(plain, unit.id), b = spike_train(varied, unit.id);
        ASSERT_EQ(a.size(), b.size()) << "unit " << unit.id;
        for (std::size_t i = 0; i < a.size(); ++i)
            ASSERT_LE(a[i] > b[i] ? a[i] - b[i] : b[i] - a[i], 9u) << "unit " << unit.id << " spike " << i;
    }
    EXPECT_NE(varied.frames, plain.frames);

    // Per unit: the mean spikes-only waveform on its peak contact and on the contact >= 60 um away where it is
    // largest; their correlation, and whether the far one is mostly positive.
    struct Shapes {
        double correlation = 0;
        bool far_positive = false;
    };
    auto shapes = [&](const Simulated& recording, const sim::GroundTruthUnit& unit) {
        auto mean_waveform = [&](int channel) {
            const std::vector<double> raw =
                spikes_only(recording, noise, config.n_channels, channel, config.microvolts_per_bit);
            std::vector<double> mean(90, 0.0);
            for (const GroundTruthSpike& spike : recording.spikes)
                if (spike.unit == unit.id && spike.sample >= 30 && spike.sample + 60 < raw.size())
                    for (std::size_t k = 0; k < mean.size(); ++k)
                        mean[k] += raw[spike.sample - 30 + k];
            return mean;
        };
        const probe::Contact& peak = probe.contacts[static_cast<std::size_t>(unit.peak_channel)];
        std::vector<double> far;
        double far_size = 0;
        for (int c = 0; c < config.n_channels; ++c) {
            const probe::Contact& contact = probe.contacts[static_cast<std::size_t>(c)];
            if (contact.shank != peak.shank || std::hypot(contact.x_um - peak.x_um, contact.y_um - peak.y_um) < 40)
                continue;
            std::vector<double> mean = mean_waveform(c);
            double size = 0;
            for (double v : mean)
                size = std::max(size, std::abs(v));
            if (size > far_size) {
                far_size = size;
                far = std::move(mean);
            }
        }
        const std::vector<double> near = mean_waveform(unit.peak_channel);
        double nn = 0, ff = 0, nf = 0;
        for (std::size_t k = 0; k < near.size(); ++k) {
            nn += near[k] * near[k];
            ff += far[k] * far[k];
            nf += near[k] * far[k];
        }
        return Shapes{nf / std::sqrt(nn * ff),
                      *std::max_element(far.begin(), far.end()) > -*std::min_element(far.begin(), far.end())};
    };
    double plain_sum = 0, varied_sum = 0;
    int n_units = 0, plain_positive = 0, varied_positive = 0;
    for (std::size_t u = 0; u < plain.units.size(); ++u) {
        if (plain.units[u].n_spikes < 20 || plain.units[u].snr < 8)
            continue;
        EXPECT_EQ(varied.units[u].n_spikes, plain.units[u].n_spikes);
        const Shapes a = shapes(plain, plain.units[u]);
        const Shapes b = shapes(varied, varied.units[u]);
        plain_sum += a.correlation;
        varied_sum += b.correlation;
        plain_positive += a.far_positive;
        varied_positive += b.far_positive;
        ++n_units;
    }
    ASSERT_GE(n_units, 8);
    EXPECT_LT(varied_sum / n_units, plain_sum / n_units - 0.2);
    EXPECT_GT(varied_positive, plain_positive);

    config.noise_only = false;
    config.shape_variation = 0;
    EXPECT_EQ(run(config, probe).frames, plain.frames);
}

TEST(Simulator, TroughsAreWhereTheGroundTruthSays) {
    SimulationConfig config = small_config(8.0);
    const probe::Probe probe = make_probe(64, 2);
    const Simulated recording = run(config, probe);
    config.noise_only = true;
    const Simulated noise = run(config, probe);
    for (const sim::GroundTruthUnit& unit : recording.units) {
        if (unit.n_spikes < 5)
            continue;
        const std::vector<double> raw =
            spikes_only(recording, noise, config.n_channels, unit.peak_channel, config.microvolts_per_bit);
        std::vector<double> mean(21, 0.0);
        for (const GroundTruthSpike& spike : recording.spikes)
            if (spike.unit == unit.id)
                for (std::size_t k = 0; k < mean.size(); ++k)
                    mean[k] += raw[spike.sample - 10 + k];
        // The mean of a few spikes is blurred by other units' spikes: the trough may be flat over two samples.
        const double minimum = *std::min_element(mean.begin(), mean.end());
        EXPECT_LE(mean[10], 0.97 * minimum) << "unit " << unit.id;
        EXPECT_LT(mean[10], mean[7]) << "unit " << unit.id;
        EXPECT_LT(mean[10], mean[13]) << "unit " << unit.id;
    }
}

/// Spikes straddling the simulator's internal blocks and the reader's chunks look like all the others.
TEST(Simulator, SpikesAcrossChunkBoundariesAreWhole) {
    SimulationConfig config = small_config(10.0);
    config.n_units = 4;
    const probe::Probe probe = make_probe(64, 2);
    const Simulated recording = run(config, probe, 999);
    config.noise_only = true;
    const Simulated noise = run(config, probe, 999);

    for (const sim::GroundTruthUnit& unit : recording.units) {
        const std::vector<double> raw =
            spikes_only(recording, noise, config.n_channels, unit.peak_channel, config.microvolts_per_bit);
        std::vector<std::uint64_t> own, all;
        for (const GroundTruthSpike& spike : recording.spikes) {
            all.push_back(spike.sample);
            if (spike.unit == unit.id)
                own.push_back(spike.sample);
        }
        std::vector<double> mean(120, 0.0);
        for (std::uint64_t sample : own)
            for (std::size_t k = 0; k < mean.size(); ++k)
                mean[k] += raw[sample - 40 + k];
        std::size_t checked = 0;
        for (std::uint64_t sample : own) {
            const bool overlapped = std::any_of(all.begin(), all.end(), [&](std::uint64_t t) {
                return t != sample && t + 200 > sample && t < sample + 200;
            });
            if (overlapped)
                continue;
            double xy = 0, xx = 0, yy = 0;
            for (std::size_t k = 0; k < mean.size(); ++k) {
                const double x = raw[sample - 40 + k];
                xy += x * mean[k];
                xx += x * x;
                yy += mean[k] * mean[k];
            }
            EXPECT_GT(xy / std::sqrt(xx * yy), 0.97) << "unit " << unit.id << " spike at " << sample;
            ++checked;
        }
        EXPECT_GT(checked, 0u);
    }
}

TEST(Simulator, DriftMovesWaveformsButNotSpikeTimes) {
    SimulationConfig config = small_config(3.0);
    const probe::Probe probe = make_probe(64, 2);
    const Simulated still = run(config, probe);
    config.drift = sim::triangle_drift(20.0);
    const Simulated drifting = run(config, probe);
    const Simulated again = run(config, probe);
    EXPECT_TRUE(drifting.frames == again.frames);
    EXPECT_FALSE(still.frames == drifting.frames);
    ASSERT_EQ(still.units.size(), drifting.units.size());
    for (std::size_t u = 0; u < still.units.size(); ++u)
        EXPECT_EQ(still.units[u].n_spikes, drifting.units[u].n_spikes);
}

// ---------------------------------------------------------------------------------------------------------------
// Drift models: delta(t, y) is the displacement of the units relative to the probe along y.

constexpr double kRate = 30000.0;

sim::DriftField field(sim::DriftModel model, const probe::Probe& probe, double duration_s = 100.0) {
    return sim::DriftField(model, probe, duration_s, kRate);
}

sim::DriftModel model_of(sim::DriftKind kind, double amplitude_um = 0.0, double period_s = 0.0) {
    sim::DriftModel model = sim::default_drift_model(kind);
    if (amplitude_um != 0.0)
        model.amplitude_um = amplitude_um;
    if (period_s != 0.0)
        model.period_s = period_s;
    return model;
}

TEST(DriftModels, NamesAndDefaults) {
    for (sim::DriftKind kind :
         {sim::DriftKind::none, sim::DriftKind::triangle, sim::DriftKind::sine, sim::DriftKind::ramp,
          sim::DriftKind::step, sim::DriftKind::nonrigid, sim::DriftKind::wander})
        EXPECT_EQ(sim::parse_drift_kind(sim::to_string(kind)), kind);
    EXPECT_THROW(sim::parse_drift_kind("wobble"), InputError);
    EXPECT_THROW(sim::parse_drift_kind("Sine"), InputError);

    EXPECT_DOUBLE_EQ(sim::default_drift_model(sim::DriftKind::sine).amplitude_um, 20.0);
    EXPECT_DOUBLE_EQ(sim::default_drift_model(sim::DriftKind::sine).period_s, 60.0);
    EXPECT_DOUBLE_EQ(sim::default_drift_model(sim::DriftKind::ramp).amplitude_um, 40.0);
    EXPECT_DOUBLE_EQ(sim::default_drift_model(sim::DriftKind::ramp).period_s, 600.0);
    EXPECT_DOUBLE_EQ(sim::default_drift_model(sim::DriftKind::step).amplitude_um, 15.0);
    EXPECT_FALSE(sim::default_drift_model(sim::DriftKind::step).step_s.has_value());
    EXPECT_DOUBLE_EQ(sim::default_drift_model(sim::DriftKind::nonrigid).amplitude_um, 20.0);
    EXPECT_DOUBLE_EQ(sim::default_drift_model(sim::DriftKind::nonrigid).period_s, 60.0);
    EXPECT_DOUBLE_EQ(sim::default_drift_model(sim::DriftKind::wander).amplitude_um, 20.0);
    EXPECT_DOUBLE_EQ(sim::default_drift_model(sim::DriftKind::wander).period_s, 60.0);
    EXPECT_EQ(sim::triangle_drift(0.0).kind, sim::DriftKind::none);
    EXPECT_EQ(sim::triangle_drift(-3.0).kind, sim::DriftKind::triangle);
    EXPECT_DOUBLE_EQ(sim::triangle_drift(-3.0).amplitude_um, 25.0);
    EXPECT_DOUBLE_EQ(sim::triangle_drift(-3.0).speed_um_per_s, -3.0);
}

TEST(DriftModels, TriangleIsTheHistoricalWave) {
    // The formula --drift has always used (amplitude 25 um), written out independently: a 25 um triangle travelled
    // at |v|, first towards the sign of v.
    auto historical = [](double v, double samples) {
        const double travelled = std::abs(v) * samples / kRate;
        const double m = std::fmod(travelled, 100.0);
        const double offset = m < 25.0 ? m : m < 75.0 ? 50.0 - m : m - 100.0;
        return v > 0 ? offset : -offset;
    };
    const probe::Probe probe = make_probe(64, 2);
    for (double v : {20.0, -35.0, 0.5}) {
        const sim::DriftField drift = field(sim::triangle_drift(v), probe);
        for (double samples = 0; samples < 200.0 * kRate; samples += 12345.678)
            for (double y : {0.0, 150.0, 300.0})
                ASSERT_EQ(drift.at_sample(samples, y), historical(v, samples)) << v << " " << samples;
        EXPECT_DOUBLE_EQ(drift.max_abs_um(), 25.0);
    }
    const sim::DriftField drift = field(sim::triangle_drift(20.0), probe);
    EXPECT_NEAR(drift.at_time(0.0, 0.0), 0.0, 1e-12);
    EXPECT_NEAR(drift.at_time(1.0, 0.0), 20.0, 1e-9);
    EXPECT_NEAR(drift.at_time(1.25, 0.0), 25.0, 1e-9);
    EXPECT_NEAR(drift.at_time(2.0, 0.0), 10.0, 1e-9);
    EXPECT_NEAR(drift.at_time(3.75, 0.0), -25.0, 1e-9);
    EXPECT_NEAR(drift.at_time(4.5, 0.0), -10.0, 1e-9);
    EXPECT_NEAR(field(sim::triangle_drift(-20.0), probe).at_time(1.0, 0.0), -20.0, 1e-9);
}

TEST(DriftModels, RigidModelsAtKnownTimes) {
    const probe::Probe probe = make_probe(64, 2); // y from 0 to 300 um
    const sim::DriftField none = field({}, probe);
    EXPECT_FALSE(none.active());
    EXPECT_EQ(none.at_time(12.0, 40.0), 0.0);
    EXPECT_EQ(none.max_abs_um(), 0.0);

    const sim::DriftField sine = field(model_of(sim::DriftKind::sine), probe);
    EXPECT_TRUE(sine.active());
    for (double y : {0.0, 300.0}) {
        EXPECT_NEAR(sine.at_time(0.0, y), 0.0, 1e-12);
        EXPECT_NEAR(sine.at_time(15.0, y), 20.0, 1e-9);
        EXPECT_NEAR(sine.at_time(30.0, y), 0.0, 1e-9);
        EXPECT_NEAR(sine.at_time(45.0, y), -20.0, 1e-9);
        EXPECT_NEAR(sine.at_time(10.0, y), 20.0 * std::sin(std::numbers::pi / 3.0), 1e-9);
        EXPECT_NEAR(sine.at_time(75.0, y), 20.0, 1e-9);
    }
    EXPECT_NEAR(field(model_of(sim::DriftKind::sine, -8.0, 2.0), probe).at_time(0.5, 0.0), -8.0, 1e-9);

    const sim::DriftField ramp = field(model_of(sim::DriftKind::ramp), probe, 1000.0);
    EXPECT_NEAR(ramp.at_time(0.0, 0.0), 0.0, 1e-12);
    EXPECT_NEAR(ramp.at_time(150.0, 0.0), 10.0, 1e-9);
    EXPECT_NEAR(ramp.at_time(300.0, 300.0), 20.0, 1e-9);
    EXPECT_NEAR(ramp.at_time(600.0, 0.0), 40.0, 1e-9);
    EXPECT_NEAR(ramp.at_time(900.0, 0.0), 40.0, 1e-9);
    EXPECT_DOUBLE_EQ(ramp.max_abs_um(), 40.0);

    // The step's default time is half the recording.
    const sim::DriftField step = field(model_of(sim::DriftKind::step), probe, 100.0);
    EXPECT_EQ(step.at_time(0.0, 0.0), 0.0);
    EXPECT_EQ(step.at_time(49.99, 100.0), 0.0);
    EXPECT_EQ(step.at_time(50.0, 100.0), 15.0);
    EXPECT_EQ(step.at_time(99.0, 300.0), 15.0);
    EXPECT_EQ(step.model().step_s.value(), 50.0);
    sim::DriftModel early = model_of(sim::DriftKind::step, -7.0);
    early.step_s = 10.0;
    EXPECT_EQ(field(early, probe).at_time(9.9, 0.0), 0.0);
    EXPECT_EQ(field(early, probe).at_time(10.0, 0.0), -7.0);
}

TEST(DriftModels, NonrigidGrowsAndLagsWithDepth) {
    const probe::Probe probe = make_probe(64, 2); // y from 0 to 300 um on both shanks
    const sim::DriftField drift = field(model_of(sim::DriftKind::nonrigid), probe);
    // Lowest contact: 0.25 A, no lag.
    EXPECT_NEAR(drift.at_time(0.0, 0.0), 0.0, 1e-12);
    EXPECT_NEAR(drift.at_time(15.0, 0.0), 5.0, 1e-9);
    EXPECT_NEAR(drift.at_time(45.0, 0.0), -5.0, 1e-9);
    // Highest contact: A, a quarter period (15 s) behind.
    EXPECT_NEAR(drift.at_time(0.0, 300.0), -20.0, 1e-9);
    EXPECT_NEAR(drift.at_time(15.0, 300.0), 0.0, 1e-9);
    EXPECT_NEAR(drift.at_time(30.0, 300.0), 20.0, 1e-9);
    // Half way: 0.625 A, an eighth of a period behind.
    EXPECT_NEAR(drift.at_time(7.5, 150.0), 0.0, 1e-9);
    EXPECT_NEAR(drift.at_time(22.5, 150.0), 12.5, 1e-9);
    // Outside the contacts' range the depth is clamped.
    EXPECT_NEAR(drift.at_time(30.0, 400.0), 20.0, 1e-9);
    EXPECT_NEAR(drift.at_time(15.0, -50.0), 5.0, 1e-9);
    EXPECT_DOUBLE_EQ(drift.max_abs_um(), 20.0);
    // The amplitude grows monotonically up the shank.
    double previous = 0.0;
    for (double y = 0.0; y <= 300.0; y += 10.0) {
        double peak = 0.0;
        for (double t = 0.0; t < 60.0; t += 0.05)
            peak = std::max(peak, std::abs(drift.at_time(t, y)));
        EXPECT_GE(peak, previous - 1e-6) << y;
        previous = peak;
    }
    EXPECT_NEAR(previous, 20.0, 1e-3);
}

// The irregular model: rigid, from 0, within +-A but spanning most of it, reversing at irregular times, and moving
// faster than the sine of the same amplitude at times.
TEST(DriftModels, WanderIsIrregularBoundedAndRigid) {
    const probe::Probe probe = make_probe(64, 2);
    const sim::DriftField drift = field(model_of(sim::DriftKind::wander), probe);
    EXPECT_NEAR(drift.at_time(0.0, 0.0), 0.0, 1e-12);
    double low = 0, high = 0, fastest = 0, previous = 0;
    std::vector<double> reversals; // times (s) where the slow motion changes direction
    double last_slope = 0;
    for (double t = 0.0; t < 600.0; t += 0.25) {
        const double d = drift.at_time(t, 0.0);
        ASSERT_EQ(d, drift.at_time(t, 600.0)) << "rigid";
        ASSERT_LT(std::abs(d), 20.0);
        low = std::min(low, d);
        high = std::max(high, d);
        // The pulsation (1.3 Hz) averages out over a whole number of its periods (10 / 1.3 s).
        const double slope = drift.at_time(t + 10.0 / 1.3, 0.0) - drift.at_time(t, 0.0);
        if (t > 0 && (slope > 0) != (last_slope > 0))
            reversals.push_back(t);
        last_slope = slope;
        if (t > 0)
            fastest = std::max(fastest, std::abs(d - previous) / 0.25);
        previous = d;
    }
    EXPECT_LT(low, -15.0);
    EXPECT_GT(high, 15.0);
    EXPECT_GT(fastest, 2.0 * std::numbers::pi * 20.0 / 60.0) << "faster than the sine's steepest";
    ASSERT_GE(reversals.size(), 10u);
    std::vector<double> gaps;
    for (std::size_t k = 1; k < reversals.size(); ++k)
        gaps.push_back(reversals[k] - reversals[k - 1]);
    EXPECT_GT(*std::max_element(gaps.begin(), gaps.end()), 2.0 * *std::min_element(gaps.begin(), gaps.end()))
        << "reversals at irregular times";
}

TEST(DriftModels, EveryModelIsDeterministicAndMovesOnlyTheWaveforms) {
    SimulationConfig config = small_config(2.0);
    const probe::Probe probe = make_probe(64, 2);
    const Simulated still = run(config, probe);
    for (sim::DriftKind kind : {sim::DriftKind::triangle, sim::DriftKind::sine, sim::DriftKind::ramp,
                                sim::DriftKind::step, sim::DriftKind::nonrigid, sim::DriftKind::wander}) {
        config.drift = model_of(kind, 0.0, kind == sim::DriftKind::ramp ? 1.0 : 2.0);
        const Simulated drifting = run(config, probe);
        const Simulated again = run(config, probe, 1000);
        EXPECT_TRUE(drifting.frames == again.frames) << sim::to_string(kind);
        EXPECT_FALSE(drifting.frames == still.frames) << sim::to_string(kind);
        ASSERT_EQ(drifting.units.size(), still.units.size());
        for (std::size_t u = 0; u < still.units.size(); ++u)
            EXPECT_EQ(drifting.units[u].n_spikes, still.units[u].n_spikes) << sim::to_string(kind);
    }
    // A step late in the recording leaves everything before it untouched (the footprints are the same).
    sim::DriftModel step = model_of(sim::DriftKind::step);
    step.step_s = 1.5;
    config.drift = step;
    const Simulated stepped = run(config, probe);
    const std::size_t before = static_cast<std::size_t>(1.4 * kRate) * 64;
    EXPECT_TRUE(std::equal(stepped.frames.begin(), stepped.frames.begin() + static_cast<std::ptrdiff_t>(before),
                           still.frames.begin()));
    EXPECT_FALSE(std::equal(stepped.frames.begin() + static_cast<std::ptrdiff_t>(before), stepped.frames.end(),
                            still.frames.begin() + static_cast<std::ptrdiff_t>(before)));
}

TEST(DriftModels, RejectsBadParameters) {
    const probe::Probe probe = make_probe(64, 2);
    auto expect_rejected = [&](sim::DriftModel model, const std::string& words) {
        SimulationConfig config = small_config(10.0);
        config.drift = model;
        try {
            Simulator simulator(config, probe);
            ADD_FAILURE() << "accepted: " << words;
        } catch (const InputError& error) {
            EXPECT_NE(std::string(error.what()).find(words), std::string::npos) << error.what();
        }
    };
    auto with = [](sim::DriftKind kind, auto change) {
        sim::DriftModel model = sim::default_drift_model(kind);
        change(model);
        return model;
    };
    const double nan = std::nan("");
    for (sim::DriftKind kind : {sim::DriftKind::triangle, sim::DriftKind::sine, sim::DriftKind::ramp,
                                sim::DriftKind::step, sim::DriftKind::nonrigid, sim::DriftKind::wander}) {
        expect_rejected(with(kind, [](sim::DriftModel& m) { m.amplitude_um = 0.0; }), "amplitude");
        expect_rejected(with(kind, [&](sim::DriftModel& m) { m.amplitude_um = nan; }), "amplitude");
        expect_rejected(with(kind, [](sim::DriftModel& m) { m.amplitude_um = 1e4; }), "amplitude");
    }
    expect_rejected(with(sim::DriftKind::triangle, [](sim::DriftModel& m) { m.amplitude_um = -5.0; }), "amplitude");
    expect_rejected(with(sim::DriftKind::triangle, [](sim::DriftModel& m) { m.speed_um_per_s = 0.0; }), "speed");
    expect_rejected(sim::triangle_drift(1e9), "speed");
    expect_rejected(sim::triangle_drift(nan), "speed");
    for (sim::DriftKind kind : {sim::DriftKind::sine, sim::DriftKind::nonrigid, sim::DriftKind::wander})
        for (double period : {0.0, -60.0, nan, 1e9})
            expect_rejected(with(kind, [&](sim::DriftModel& m) { m.period_s = period; }), "period");
    expect_rejected(with(sim::DriftKind::ramp, [](sim::DriftModel& m) { m.period_s = 0.0; }), "rise time");
    for (double at : {-1.0, 10.5, nan})
        expect_rejected(with(sim::DriftKind::step, [&](sim::DriftModel& m) { m.step_s = at; }), "time");

    // Negative amplitudes (a first move towards smaller y) are fine except for the triangle.
    SimulationConfig config = small_config(1.0);
    config.drift = with(sim::DriftKind::sine, [](sim::DriftModel& m) { m.amplitude_um = -30.0; });
    EXPECT_NO_THROW(Simulator(config, probe));
}

TEST(Simulator, RejectsBadConfigurations) {
    const probe::Probe probe = make_probe(64, 2);
    auto expect_rejected = [&](auto change) {
        SimulationConfig config = small_config(1.0);
        change(config);
        EXPECT_THROW(Simulator(config, probe), InputError);
    };
    expect_rejected([](SimulationConfig& c) { c.n_channels = 32; });
    expect_rejected([](SimulationConfig& c) { c.duration_s = 0; });
    expect_rejected([](SimulationConfig& c) { c.duration_s = -1; });
    expect_rejected([](SimulationConfig& c) { c.sample_rate = 500; });
    expect_rejected([](SimulationConfig& c) { c.sample_rate = std::nan(""); });
    expect_rejected([](SimulationConfig& c) { c.noise_uv = 0; });
    expect_rejected([](SimulationConfig& c) { c.n_background_units = -1; });
    expect_rejected([](SimulationConfig& c) { c.microvolts_per_bit = 0; });
    expect_rejected([](SimulationConfig& c) { c.n_units = -2; });
    expect_rejected([](SimulationConfig& c) { c.drift = sim::triangle_drift(1e9); });
    expect_rejected([](SimulationConfig& c) { c.burst_fraction = 1.5; });
    expect_rejected([](SimulationConfig& c) { c.burst_fraction = -0.1; });
    expect_rejected([](SimulationConfig& c) { c.shape_variation = 1.5; });
    expect_rejected([](SimulationConfig& c) { c.shape_variation = -0.1; });
    try {
        SimulationConfig config = small_config(1.0);
        config.n_channels = 128;
        Simulator simulator(config, probe);
        FAIL() << "no exception";
    } catch (const InputError& error) {
        EXPECT_NE(std::string(error.what()).find("64"), std::string::npos) << error.what();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Waveform families

struct WaveformShape {
    double second_trough_ms = 0;    // 0: none (a local minimum at least 25 % deep, 0.3 ms or more after the trough)
    double second_trough_depth = 0; // relative to the first trough
    double positive_before = 0;     // highest value before the trough
};

WaveformShape describe(const std::vector<float>& table) {
    WaveformShape shape;
    const std::size_t zero = static_cast<std::size_t>(sim::kWaveformPreMs * sim::kTableStepsPerMs);
    EXPECT_FLOAT_EQ(table[zero], -1.0f);
    EXPECT_EQ(*std::min_element(table.begin(), table.end()), -1.0f);
    for (std::size_t i = 0; i < zero; ++i)
        shape.positive_before = std::max(shape.positive_before, static_cast<double>(table[i]));
    const std::size_t after = zero + static_cast<std::size_t>(0.3 * sim::kTableStepsPerMs);
    for (std::size_t i = after; i + 1 < table.size(); ++i)
        if (table[i] < table[i - 1] && table[i] <= table[i + 1] && -table[i] > 0.25 &&
            -table[i] > shape.second_trough_depth) {
            shape.second_trough_depth = -table[i];
            shape.second_trough_ms = static_cast<double>(i - zero) / sim::kTableStepsPerMs;
        }
    return shape;
}

TEST(Waveforms, FamiliesHaveTheirSharesAndShapes) {
    constexpr int kTables = 3000;
    int double_trough = 0, positive_first = 0;
    sim::Rng rng(5, 77);
    for (int n = 0; n < kTables; ++n) {
        const std::vector<float> table = sim::random_waveform_table(rng);
        EXPECT_EQ(table.front(), 0.0f);
        EXPECT_EQ(table.back(), 0.0f);
        const WaveformShape shape = describe(table);
        if (shape.second_trough_ms > 0) {
            ++double_trough;
            EXPECT_GE(shape.second_trough_ms, 0.39);
            EXPECT_LE(shape.second_trough_ms, 1.31);
            EXPECT_GE(shape.second_trough_depth, 0.29);
            EXPECT_LE(shape.second_trough_depth, 0.81);
        }
        if (shape.positive_before > 0.5) {
            ++positive_first;
            EXPECT_LE(shape.positive_before, 1.5);
            EXPECT_EQ(shape.second_trough_ms, 0.0);
        }
    }
    // Binomial: 3000 draws at 20 % and 5 % have standard deviations of 0.7 and 0.4 points.
    EXPECT_NEAR(double_trough / static_cast<double>(kTables), 0.20, 0.03);
    EXPECT_NEAR(positive_first / static_cast<double>(kTables), 0.05, 0.015);
}

class SimulateToFolder : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ =
            std::filesystem::temp_directory_path() / ("spikeline_test_sim_" + std::to_string(::getpid()) + "_" +
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::filesystem::path dir_;
};

TEST_F(SimulateToFolder, WritesRecordingProbeAndGroundTruth) {
    SimulationConfig config = small_config(2.0);
    config.n_channels = 32;
    const probe::Probe probe = make_probe(32, 1);
    std::vector<double> fractions;
    sim::simulate_to_folder(config, probe, dir_ / "out", [&](double f) { fractions.push_back(f); });
    const std::filesystem::path out = dir_ / "out";

    ASSERT_FALSE(fractions.empty());
    EXPECT_DOUBLE_EQ(fractions.back(), 1.0);
    EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));

    EXPECT_TRUE(std::filesystem::exists(out / "recording.bin"));
    EXPECT_TRUE(std::filesystem::exists(out / "recording.meta"));
    EXPECT_TRUE(std::filesystem::exists(out / "probe.json"));
    EXPECT_EQ(std::filesystem::file_size(out / "recording.bin"), 60000u * 32u * 2u);

    // The files hold exactly what the in-memory simulator produces.
    const Simulated expected = run(config, probe);
    auto source = io::open_recording(out / "recording.bin", {});
    EXPECT_EQ(source->info().n_channels, 32);
    EXPECT_EQ(source->info().n_frames, 60000u);
    EXPECT_DOUBLE_EQ(source->info().sample_rate, 30000.0);
    EXPECT_NEAR(source->info().microvolts_per_bit, config.microvolts_per_bit, 1e-6);
    std::vector<std::int16_t> frames(60000u * 32u);
    std::size_t position = 0;
    while (const std::size_t got = source->read(frames.data() + position * 32, 60000 - position))
        position += got;
    EXPECT_EQ(position, 60000u);
    EXPECT_TRUE(frames == expected.frames);

    const io::NpyArray times = io::read_npy(out / "ground_truth" / "spike_times.npy");
    const io::NpyArray units = io::read_npy(out / "ground_truth" / "spike_units.npy");
    EXPECT_EQ(times.descr, "<u8");
    EXPECT_EQ(units.descr, "<i4");
    const std::vector<std::uint64_t> time_values = times.as<std::uint64_t>();
    const std::vector<std::int32_t> unit_values = units.as<std::int32_t>();
    ASSERT_EQ(time_values.size(), expected.spikes.size());
    ASSERT_EQ(unit_values.size(), expected.spikes.size());
    for (std::size_t i = 0; i < time_values.size(); ++i) {
        EXPECT_EQ(time_values[i], expected.spikes[i].sample);
        EXPECT_EQ(unit_values[i], expected.spikes[i].unit);
    }

    std::ifstream tsv(out / "ground_truth" / "units.tsv");
    std::string line;
    std::getline(tsv, line);
    EXPECT_EQ(line, "unit_id\tpeak_channel\tsnr\trate_hz\tn_spikes");
    std::size_t rows = 0;
    while (std::getline(tsv, line)) {
        std::istringstream fields(line);
        int id = -1, peak = -1;
        double snr = 0, rate = 0;
        std::uint64_t count = 0;
        fields >> id >> peak >> snr >> rate >> count;
        ASSERT_TRUE(fields) << line;
        EXPECT_EQ(id, static_cast<int>(rows));
        EXPECT_EQ(count, expected.units[rows].n_spikes);
        EXPECT_EQ(peak, expected.units[rows].peak_channel);
        ++rows;
    }
    EXPECT_EQ(rows, expected.units.size());

    std::ifstream info_file(out / "ground_truth" / "info.json");
    const nlohmann::json info = nlohmann::json::parse(info_file);
    EXPECT_DOUBLE_EQ(info.at("sample_rate").get<double>(), 30000.0);
    EXPECT_EQ(info.at("n_channels").get<int>(), 32);
    EXPECT_DOUBLE_EQ(info.at("duration_s").get<double>(), 2.0);
    EXPECT_EQ(info.at("n_frames").get<std::uint64_t>(), 60000u);
    EXPECT_EQ(info.at("seed").get<std::uint64_t>(), config.seed);
    EXPECT_EQ(info.at("n_units").get<std::size_t>(), expected.units.size());
    EXPECT_DOUBLE_EQ(info.at("noise_uv").get<double>(), config.noise_uv);
    EXPECT_DOUBLE_EQ(info.at("microvolts_per_bit").get<double>(), config.microvolts_per_bit);
    EXPECT_DOUBLE_EQ(info.at("drift_um_per_s").get<double>(), 0.0);
    EXPECT_EQ(info.at("drift_model").get<std::string>(), "none");
    EXPECT_FALSE(info.contains("drift_amplitude_um"));
    for (const char* name : {"motion_times_s.npy", "motion_depths_um.npy", "motion_um.npy"})
        EXPECT_FALSE(std::filesystem::exists(out / "ground_truth" / name)) << name;
}

nlohmann::json read_info(const std::filesystem::path& out) {
    std::ifstream file(out / "ground_truth" / "info.json");
    return nlohmann::json::parse(file);
}

TEST_F(SimulateToFolder, WritesTheGroundTruthMotion) {
    SimulationConfig config = small_config(1.234);
    const probe::Probe probe = make_probe(64, 2); // two shanks, y from 0 to 300 um
    config.drift = sim::default_drift_model(sim::DriftKind::nonrigid);
    config.drift.period_s = 0.8;
    sim::simulate_to_folder(config, probe, dir_ / "out");
    const std::filesystem::path truth = dir_ / "out" / "ground_truth";

    const io::NpyArray times = io::read_npy(truth / "motion_times_s.npy");
    const io::NpyArray depths = io::read_npy(truth / "motion_depths_um.npy");
    const io::NpyArray motion = io::read_npy(truth / "motion_um.npy");
    EXPECT_EQ(times.descr, "<f8");
    EXPECT_EQ(depths.descr, "<f8");
    EXPECT_EQ(motion.descr, "<f8");
    // Every 10 ms from 0 while inside the recording: 0 .. 1.23 s.
    ASSERT_EQ(times.shape, (std::vector<std::size_t>{124}));
    ASSERT_EQ(depths.shape, (std::vector<std::size_t>{7}));
    ASSERT_EQ(motion.shape, (std::vector<std::size_t>{124, 7}));
    const std::vector<double> t = times.as<double>();
    const std::vector<double> y = depths.as<double>();
    const std::vector<double> delta = motion.as<double>();
    for (std::size_t i = 0; i < t.size(); ++i)
        EXPECT_NEAR(t[i], 0.01 * static_cast<double>(i), 1e-12);
    for (std::size_t j = 0; j < y.size(); ++j)
        EXPECT_DOUBLE_EQ(y[j], 50.0 * static_cast<double>(j));
    // The values are the model's: checked against the formula, not the library.
    for (std::size_t i = 0; i < t.size(); ++i)
        for (std::size_t j = 0; j < y.size(); ++j) {
            const double u = y[j] / 300.0;
            const double expected =
                20.0 * (0.25 + 0.75 * u) * std::sin(2.0 * std::numbers::pi * t[i] / 0.8 - 0.5 * std::numbers::pi * u);
            ASSERT_NEAR(delta[i * y.size() + j], expected, 1e-9) << i << " " << j;
        }

    const nlohmann::json info = read_info(dir_ / "out");
    EXPECT_EQ(info.at("drift_model").get<std::string>(), "nonrigid");
    EXPECT_DOUBLE_EQ(info.at("drift_amplitude_um").get<double>(), 20.0);
    EXPECT_DOUBLE_EQ(info.at("drift_period_s").get<double>(), 0.8);
    EXPECT_DOUBLE_EQ(info.at("drift_um_per_s").get<double>(), 0.0);
    EXPECT_FALSE(info.contains("drift_step_s"));
}

TEST_F(SimulateToFolder, MotionOfTheTriangleAndTheStep) {
    SimulationConfig config = small_config(2.0);
    config.n_channels = 66;
    const probe::Probe probe = make_probe(66, 1); // one shank, y from 0 to 640 um: depths up to 650
    config.drift = sim::triangle_drift(-30.0);
    sim::simulate_to_folder(config, probe, dir_ / "triangle");
    const std::filesystem::path truth = dir_ / "triangle" / "ground_truth";
    const std::vector<double> depths = io::read_npy(truth / "motion_depths_um.npy").as<double>();
    ASSERT_EQ(depths.size(), 14u);
    EXPECT_DOUBLE_EQ(depths.back(), 650.0);
    const io::NpyArray motion = io::read_npy(truth / "motion_um.npy");
    ASSERT_EQ(motion.shape, (std::vector<std::size_t>{200, 14}));
    const std::vector<double> delta = motion.as<double>();
    // Rigid: every depth moves alike; -30 um/s reaches -25 um at 5/6 s and is back to -10 um at 1.5 s.
    for (std::size_t i = 0; i < 200; ++i)
        for (std::size_t j = 1; j < 14; ++j)
            ASSERT_EQ(delta[i * 14 + j], delta[i * 14]);
    EXPECT_NEAR(delta[50 * 14], -15.0, 1e-9);
    EXPECT_NEAR(delta[150 * 14], -5.0, 1e-9);
    const nlohmann::json info = read_info(dir_ / "triangle");
    EXPECT_EQ(info.at("drift_model").get<std::string>(), "triangle");
    EXPECT_DOUBLE_EQ(info.at("drift_um_per_s").get<double>(), -30.0);
    EXPECT_DOUBLE_EQ(info.at("drift_amplitude_um").get<double>(), 25.0);
    EXPECT_NEAR(info.at("drift_period_s").get<double>(), 100.0 / 30.0, 1e-12);

    config.drift = sim::default_drift_model(sim::DriftKind::step);
    sim::simulate_to_folder(config, probe, dir_ / "step");
    const std::vector<double> step = io::read_npy(dir_ / "step" / "ground_truth" / "motion_um.npy").as<double>();
    ASSERT_EQ(step.size(), 200u * 14u);
    EXPECT_EQ(step[99 * 14 + 3], 0.0);
    EXPECT_EQ(step[100 * 14 + 3], 15.0);
    EXPECT_EQ(step[199 * 14 + 13], 15.0);
    EXPECT_DOUBLE_EQ(read_info(dir_ / "step").at("drift_step_s").get<double>(), 1.0);

    // A probe with a single row still gets two depths.
    probe::Probe row = make_probe(2, 1);
    EXPECT_EQ(sim::motion_depths_um(row), (std::vector<double>{0.0, 50.0}));
}

TEST_F(SimulateToFolder, BadConfigurationCreatesNothing) {
    SimulationConfig config = small_config(1.0);
    config.duration_s = 0;
    EXPECT_THROW(sim::simulate_to_folder(config, make_probe(64, 2), dir_ / "out"), InputError);
    EXPECT_FALSE(std::filesystem::exists(dir_ / "out"));
}

} // namespace
