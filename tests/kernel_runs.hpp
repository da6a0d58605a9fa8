#pragma once
// Running the HLS kernel tops (kernels/) as C++ the way a host drives a compute unit through XRT: its own state buffer,
// parameters as a register program (register_program.hpp), the output image decoded (kernel_abi.hpp). Shared by the
// kernel, sorting and motion tests.
#include "backend/backend.hpp"
#include "spikeline/hw/register_program.hpp"
#include "spikeline_sort.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

namespace spikeline::testing {

// A classifier with random basis, snippet channels and entries: labels are arbitrary but every part of the stage
// (snippet, projection, gates, ties to the lower entry) is exercised.
inline std::shared_ptr<HwSortParams> random_classifier(int channels, std::uint32_t seed) {
    std::mt19937 rng(seed);
    auto params = std::make_shared<HwSortParams>();
    params->n_channels = channels;
    params->pre = 15;
    params->post = 30;
    for (int ch = 0; ch < channels; ++ch) {
        for (int k = 0; k < HwSortConfig::snippet_channels; ++k)
            params->snippet_channels[ch][k] = static_cast<std::int16_t>(k < 6 ? (ch + k) % channels : -1);
        params->n_entries[ch] = static_cast<std::uint8_t>(rng() % (HwSortConfig::max_entries + 1));
        for (int e = 0; e < HwSortConfig::max_entries; ++e) {
            hw::ClassifierEntry& entry = params->entries[ch][e];
            entry.unit = static_cast<std::int32_t>(rng() % 40);
            entry.template_id = ch * HwSortConfig::max_entries + e;
            for (int v = 0; v < HwSortConfig::n_values; ++v)
                entry.centroid[v] = static_cast<std::int32_t>(rng() % 4001) - 2000;
            entry.gate = static_cast<std::int64_t>(rng() % 2000000000u);
        }
    }
    for (int p = 0; p < HwSortConfig::n_features; ++p)
        for (int s = 0; s < params->pre + 1 + params->post; ++s)
            params->basis[p][s] = static_cast<std::int16_t>(static_cast<int>(rng() % 32768) - 16384);
    return params;
}

/// One record of the output image.
struct KernelRecord {
    std::uint32_t kind = 0;
    hw::SortedSpike spike{}; ///< event, unit, template id and features
};

/// What one run returned.
struct KernelRun {
    std::vector<std::uint32_t> header;
    std::vector<KernelRecord> records; ///< at most max_records
    std::uint32_t produced() const { return header[hw::abi::kHeaderRecords]; }
};

using KernelTop = void (*)(const std::int16_t*, std::uint32_t, const std::uint32_t*, std::uint32_t, std::uint32_t*,
                           std::uint32_t, std::uint32_t, std::uint32_t*);

/// One compute unit: a kernel top and its state buffer; writes accumulate in the next run's program.
class KernelUnit {
public:
    explicit KernelUnit(bool sorting)
        : top_(sorting ? &spikeline_sort : &spikeline_detect),
          state_(sorting ? kernels::kSortImageWords : kernels::kDetectImageWords, 0xA5A5A5A5u) {}

    /// Appends one register write to the next run's program.
    void write(std::uint32_t address, std::uint32_t value) {
        program_.push_back(address);
        program_.push_back(value);
    }
    auto writer() {
        return [this](std::uint32_t address, std::uint32_t value) { write(address, value); };
    }
    hw::TableWriteStager& stager() { return stager_; }

    /// Detection parameters, and (sorting) the stage enabled with a whole classifier loaded while held.
    void program_stream(const HwParams& detect, const HwSortParams* sort) {
        hw::program_detect_params(detect, writer());
        if (!sort)
            return;
        write(hw::sort_reg::control, hw::sort_reg::control_hold);
        hw::program_sort_params(stager_, *sort, detect.n_channels, writer());
        write(hw::sort_reg::control, hw::sort_reg::control_enable);
    }

    KernelRun run(const std::int16_t* frames, std::uint32_t n_frames, std::uint32_t control,
                  std::uint32_t max_records) {
        std::vector<std::uint32_t> output(hw::abi::kOutputHeaderWords +
                                          static_cast<std::size_t>(max_records) * hw::abi::kRecordWords);
        const std::uint32_t writes = static_cast<std::uint32_t>(program_.size() / 2);
        top_(frames, n_frames, program_.data(), writes, output.data(), max_records, control, state_.data());
        program_.clear();
        KernelRun result;
        result.header.assign(output.begin(), output.begin() + hw::abi::kOutputHeaderWords);
        const std::uint32_t kept = std::min(result.produced(), max_records);
        for (std::uint32_t r = 0; r < kept; ++r) {
            const std::uint32_t* w = &output[hw::abi::kOutputHeaderWords + std::size_t{r} * hw::abi::kRecordWords];
            KernelRecord record;
            record.kind = w[hw::abi::kRecordKind];
            record.spike = hw::abi::read_record(w);
            result.records.push_back(record);
        }
        return result;
    }

private:
    KernelTop top_;
    std::vector<std::uint32_t> state_; ///< not zeroed: a new stream must not depend on what it held
    std::vector<std::uint32_t> program_;
    hw::TableWriteStager stager_;
};

/// What a stream through a kernel produced, by record kind.
struct KernelStream {
    std::vector<SpikeEvent> events;
    std::vector<hw::SortedSpike> spikes;
    std::vector<KernelRecord> artifacts;
    std::uint32_t most_records = 0; ///< the largest count one run reported
};

inline void collect(const KernelRun& run, KernelStream& out) {
    out.most_records = std::max(out.most_records, run.produced());
    for (const KernelRecord& r : run.records) {
        if (r.kind == hw::abi::kRecordEvent)
            out.events.push_back(r.spike.event);
        else if (r.kind == hw::abi::kRecordSpike)
            out.spikes.push_back(r.spike);
        else
            out.artifacts.push_back(r);
    }
}

inline std::uint32_t stream_control(std::size_t start, std::size_t n, std::size_t frames) {
    std::uint32_t control = start == 0 ? hw::abi::kControlReset : 0;
    if (start + n == frames)
        control |= hw::abi::kControlFlush;
    return control;
}

/// A whole recording through one compute unit in runs of `chunk` frames; table writes ride with the run of the chunk
/// their sample falls in (they must come in sample order).
inline KernelStream run_kernel_stream(bool sorting, const HwParams& detect, const HwSortParams* sort,
                                      const std::vector<std::int16_t>& data, std::size_t chunk,
                                      std::uint32_t max_records, const std::vector<hw::TableWrite>& writes = {}) {
    const auto channels = static_cast<std::size_t>(detect.n_channels);
    const std::size_t frames = data.size() / channels;
    KernelUnit unit(sorting);
    unit.program_stream(detect, sort);
    KernelStream out;
    std::size_t next = 0;
    for (std::size_t f = 0; f < frames; f += chunk) {
        const std::size_t n = std::min(chunk, frames - f);
        for (; next < writes.size() && writes[next].sample < f + n; ++next)
            hw::program_table_write(unit.stager(), writes[next], unit.writer());
        collect(unit.run(&data[f * channels], static_cast<std::uint32_t>(n), stream_control(f, n, frames), max_records),
                out);
    }
    return out;
}

} // namespace spikeline::testing
