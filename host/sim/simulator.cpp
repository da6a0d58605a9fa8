#include "sim/simulator.hpp"

#include "sim/behavior.hpp"
#include "sim/drift.hpp"
#include "sim/noise.hpp"
#include "sim/units.hpp"
#include "sim/waveform.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <queue>
#include <string>

namespace spikeline::sim {
namespace {

constexpr std::size_t kBlockFrames = 1024; // internal generation block: output never depends on read() sizes

struct QueuedSpike {
    double time = 0; // samples, trough at the soma
    std::int32_t unit = 0;
    std::int32_t burst_left = 0; // spikes of its burst still to come after this one
    double scale = 1.0;          // amplitude relative to the unit's (below 1 inside a burst)
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
    require(config.burst_fraction >= 0.0 && config.burst_fraction <= 1.0,
            "--bursts is a share of the units: between 0 and 1 (got " + std::to_string(config.burst_fraction) + ")");
    require(config.shape_variation >= 0.0 && config.shape_variation <= 1.0,
            "--shape-variation is a weight: between 0 and 1 (got " + std::to_string(config.shape_variation) + ")");
    require(config.duration_s * config.sample_rate >= 1.0 && config.duration_s * config.sample_rate < 1e15,
            "the duration must cover at least one sample and stay below 1e15 samples");
    require(config.n_units >= 0, "the number of units cannot be negative (got " + std::to_string(config.n_units) +
                                     "; 0 means 3 units per 10 channels)");
    require(config.n_units <= 100000,
            "at most 100000 units can be simulated (got " + std::to_string(config.n_units) + ")");
    require(config.n_background_units >= 0 && config.n_background_units <= 100000,
            "--background-units must be between 0 and 100000 (got " + std::to_string(config.n_background_units) + ")");
    require(std::isfinite(config.microvolts_per_bit) && config.microvolts_per_bit > 0,
            "microvolts per bit must be positive (got " + std::to_string(config.microvolts_per_bit) + ")");
    require(std::isfinite(config.noise_uv) && config.noise_uv > 0 && config.noise_uv <= 1000,
            "the noise level must be between 0 and 1000 uV RMS (got " + std::to_string(config.noise_uv) + ")");
    check_drift_model(config.drift, config.duration_s);
    for (const probe::Contact& contact : probe.contacts)
        require(std::isfinite(contact.x_um) && std::isfinite(contact.y_um),
                "probe contact " + contact.id + " has a non-finite position");
}

} // namespace

struct Simulator::Impl {
    SimulationConfig config;
    probe::Probe probe;
    io::RecordingInfo recording;
    NoiseModel noise;
    std::vector<UnitModel> units;
    std::vector<GroundTruthUnit> truth;
    // With behavior: the path the tuned units follow (queried at spike candidates, in time order) and a second
    // instance of the same path sampled for kinematics.npy, so neither needs to be stored.
    std::optional<ReachTrajectory> neural_trajectory;
    std::optional<ReachTrajectory> recorded_trajectory;
    std::uint64_t next_kinematics_step = 0;

    double samples_to_table = 0; // canonical table steps per sample
    double table_zero = 0;
    std::int64_t pre_extent = 0;  // frames a spike may reach before its soma trough
    std::int64_t post_extent = 0; // ... and after it
    DriftField drift;

    std::size_t n_channels = 0;
    std::vector<float> accumulator; // frames [block_start, block_start + kBlockFrames + extents)
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
        drift = DriftField(config.drift, probe, config.duration_s, fs);

        if (config.behavior) {
            neural_trajectory.emplace(config.seed);
            recorded_trajectory.emplace(config.seed);
        }
        if (!config.noise_only) {
            create_units(config, probe, noise, drift.max_abs_um(), units, truth);
            for (std::size_t id = 0; id < units.size(); ++id)
                spike_queue.push(
                    {units[id].rng.exponential(units[id].poisson_rate_per_sample), static_cast<std::int32_t>(id)});
        }

        const std::size_t accumulator_frames = kBlockFrames + static_cast<std::size_t>(pre_extent + post_extent) + 1;
        accumulator.assign(accumulator_frames * n_channels, 0.0f);
        block.assign(kBlockFrames * n_channels, 0);
    }

    double tuned_rate_hz(const UnitModel& unit, double time_samples) {
        const KinematicsSample cursor = neural_trajectory->at(time_samples / config.sample_rate);
        const UnitTuning& tuning = unit.tuning;
        // |v| cos(theta - preferred) is the velocity's projection on the preferred direction.
        const double drive = cursor.vx_cm_s * std::cos(tuning.preferred_direction_rad) +
                             cursor.vy_cm_s * std::sin(tuning.preferred_direction_rad);
        return std::clamp(tuning.baseline_hz + tuning.depth_hz_per_cm_s * drive, 0.0, kMaxTunedRateHz);
    }

    // Adds one spike with its soma trough at time (samples), the unit displaced by offset_um along the probe, into
    // the accumulator starting at frame acc_start.
    void render_spike(const UnitModel& unit, double time, double offset_um, double amplitude, std::uint64_t acc_start) {
        const std::vector<FootprintEntry>* footprint = &unit.footprint;
        if (drift.active()) {
            scratch_footprint.clear();
            for (int c : unit.candidates) {
                const FootprintEntry entry = footprint_at(unit, probe, c, offset_um, config.sample_rate);
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
        const float* distal_waveform = unit.distal_waveform.data();
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
            const float distal = entry.distal;
            for (std::int64_t k = 0; k < end - begin; ++k, column += n_channels) {
                const float x = start + static_cast<float>(k) * step_f;
                if (x < 0.0f || x >= limit)
                    continue;
                const std::size_t i = static_cast<std::size_t>(x);
                const float fraction = x - static_cast<float>(i);
                float value = waveform[i] + fraction * (waveform[i + 1] - waveform[i]);
                if (distal != 0.0f)
                    value = (1.0f - distal) * value +
                            distal * (distal_waveform[i] + fraction * (distal_waveform[i + 1] - distal_waveform[i]));
                *column += gain * value;
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
            const bool continues_burst = spike.scale < 1.0;
            if (unit.tuning.tuned && !continues_burst) {
                // Thinning: candidates arrive at the highest possible hazard and survive with the ratio of the
                // hazard at their time; a rejected candidate is not a spike, so no refractory period follows it.
                const double hazard = hazard_per_sample(unit, tuned_rate_hz(unit, spike.time), config.sample_rate);
                if (unit.rng.uniform() * unit.poisson_rate_per_sample >= hazard) {
                    spike_queue.push({spike.time + unit.rng.exponential(unit.poisson_rate_per_sample), spike.unit});
                    continue;
                }
            }
            const double jitter = std::exp(kAmplitudeJitterSigma * unit.rng.normal());
            auto next_in_burst = [&](std::int32_t left) {
                const double interval =
                    unit.burst_rng.uniform(kBurstMinIntervalMs, kBurstMaxIntervalMs) * config.sample_rate / 1000.0;
                spike_queue.push({spike.time + interval, spike.unit, left, spike.scale * kBurstAttenuation});
            };
            if (spike.burst_left > 0) {
                next_in_burst(spike.burst_left - 1);
            } else if (unit.bursty && !continues_burst && unit.burst_rng.uniform() < kBurstStartProbability) {
                const int length = kBurstMinSpikes +
                                   static_cast<int>(unit.burst_rng.uniform() * (kBurstMaxSpikes - kBurstMinSpikes + 1));
                next_in_burst(length - 2);
            } else {
                spike_queue.push(
                    {spike.time + unit.refractory_samples + unit.rng.exponential(unit.poisson_rate_per_sample),
                     spike.unit});
            }
            const bool inside = spike.time - static_cast<double>(pre_extent) >= 0.0 &&
                                spike.time + static_cast<double>(post_extent) < static_cast<double>(n_frames);
            if (!inside)
                continue;
            const double offset_um = drift.at_sample(spike.time, unit.y_um);
            render_spike(unit, spike.time, offset_um, unit.amplitude_uv * jitter * spike.scale, block_start);
            if (static_cast<std::size_t>(spike.unit) >= truth.size())
                continue; // a background unit
            const double peak_delay = footprint_at(unit, probe, unit.peak_channel, offset_um, config.sample_rate).delay;
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

} // namespace spikeline::sim
