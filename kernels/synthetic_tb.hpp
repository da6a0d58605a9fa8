#pragma once
// What the Vitis HLS C-simulation test benches share: a synthetic 64-channel stream with a large spike on channel 10
// every 500 frames, the detection parameters for it, a compute unit's buffers in the kernel_abi.hpp layout, and the
// output image decoded. Host-side code (C++14, standard library): never synthesised.
#include "spikeline/hw/register_program.hpp"
#include "spikeline_sort.hpp"

#include <cstdio>
#include <vector>

namespace spikeline {
namespace tb {

constexpr int kChannels = 64;
constexpr std::uint32_t kFrames = 6000;
constexpr std::uint32_t kInjected = 8; ///< spikes on channel 10 after the warm-up

inline std::vector<std::int16_t> synthetic_stream() {
    std::vector<std::int16_t> data(static_cast<std::size_t>(kFrames) * kChannels);
    unsigned seed = 1;
    for (auto& v : data) {
        seed = seed * 1664525u + 1013904223u;
        v = static_cast<std::int16_t>(static_cast<int>(seed >> 26) - 32); // uniform noise, +-32 LSB
    }
    for (std::uint32_t t = 2000; t < kFrames; t += 500)
        for (int k = 0; k < 8; ++k)
            data[(t + k) * kChannels + 10] = static_cast<std::int16_t>(-600 + 60 * k);
    return data;
}

inline void synthetic_params(kernels::DetectParams& params) {
    params.n_channels = kChannels;
    params.sections[0] = {15672, -31313, 14991}; // 300 Hz high-pass at 30 kHz, Q2.14
    params.sections[1] = {3384, -6054, 3208};    // 6 kHz low-pass
    for (int ch = 0; ch < kChannels; ++ch) {
        params.group_of[ch] = -1;
        for (int k = 0; k < kernels::DetectConfig::max_neighbours; ++k)
            params.neighbours[ch][k] = -1;
    }
    params.threshold_gain = 1803; // 4.75 sigma
}

/// One record of the output image.
struct Record {
    std::uint32_t kind;
    hw::SortedSpike spike;
};

/// A compute unit: its state buffer and the next run's program.
class Unit {
public:
    Unit(bool sorting) : state_(sorting ? kernels::kSortImageWords : kernels::kDetectImageWords), sorting_(sorting) {}

    void write(std::uint32_t address, std::uint32_t value) {
        program_.push_back(address);
        program_.push_back(value);
    }

    /// One run; appends its records (at most max_records) to out and returns the count the header reports.
    std::uint32_t run(const std::int16_t* frames, std::uint32_t n_frames, std::uint32_t control,
                      std::uint32_t max_records, std::vector<Record>& out) {
        std::vector<std::uint32_t> output(hw::abi::kOutputHeaderWords + max_records * hw::abi::kRecordWords);
        const std::uint32_t n_writes = static_cast<std::uint32_t>(program_.size() / 2);
        const std::uint32_t* program = program_.empty() ? nullptr : program_.data();
        if (sorting_)
            spikeline_sort(frames, n_frames, program, n_writes, output.data(), max_records, control, state_.data());
        else
            spikeline_detect(frames, n_frames, program, n_writes, output.data(), max_records, control, state_.data());
        program_.clear();
        const std::uint32_t produced = output[hw::abi::kHeaderRecords];
        for (std::uint32_t r = 0; r < produced && r < max_records; ++r) {
            const std::uint32_t* w = &output[hw::abi::kOutputHeaderWords + r * hw::abi::kRecordWords];
            Record record;
            record.kind = w[hw::abi::kRecordKind];
            record.spike = hw::abi::read_record(w);
            out.push_back(record);
        }
        return produced;
    }

private:
    std::vector<std::uint32_t> state_;
    std::vector<std::uint32_t> program_;
    bool sorting_;
};

inline std::uint32_t control_of(std::uint32_t start, std::uint32_t n) {
    return (start == 0 ? hw::abi::kControlReset : 0u) | (start + n == kFrames ? hw::abi::kControlFlush : 0u);
}

} // namespace tb
} // namespace spikeline
