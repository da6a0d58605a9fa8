// Vitis HLS C-simulation test bench of spikeline_sort: the synthetic 64-channel stream through two compute units of
// the kernel top (each its own state buffer), in runs of different lengths interleaved, against L1's detection and
// sorting stage on the same stream. Exits non-zero unless every sorted spike (event, unit, template, features)
// equals L1's in both units and the injected spikes carry the unit of channel 10.
#include "synthetic_tb.hpp"

#include "spikeline/hw/detector.hpp"

namespace {

using namespace spikeline;

// The snippet is the peak channel and its two next channels; the first component is the peak sample, the others
// fixed pseudo-random; every channel has a wide entry (its unit, 100 + channel) and a narrow one nothing reaches.
void synthetic_classifier(kernels::SortParams& params) {
    params.n_channels = tb::kChannels;
    params.pre = 15;
    params.post = 30;
    unsigned seed = 7;
    for (int p = 0; p < kernels::SortConfig::n_features; ++p)
        for (int s = 0; s < params.pre + 1 + params.post; ++s) {
            seed = seed * 1664525u + 1013904223u;
            params.basis[p][s] =
                static_cast<std::int16_t>(p == 0 ? (s == params.pre ? 16384 : 0) : static_cast<int>(seed >> 18) - 8192);
        }
    for (int ch = 0; ch < tb::kChannels; ++ch) {
        for (int k = 0; k < kernels::SortConfig::snippet_channels; ++k)
            params.snippet_channels[ch][k] = static_cast<std::int16_t>(k < 3 ? (ch + k) % tb::kChannels : -1);
        params.n_entries[ch] = 2;
        params.entries[ch][0] = hw::ClassifierEntry{100 + ch, 2 * ch, {}, std::int64_t{1} << 50};
        params.entries[ch][1] = hw::ClassifierEntry{200 + ch, 2 * ch + 1, {}, 0};
        params.entries[ch][1].centroid[0] = 1 << 20;
    }
}

} // namespace

int main() {
    const std::vector<std::int16_t> data = tb::synthetic_stream();
    static kernels::DetectParams params; // large: not on the stack
    static kernels::SortParams classifier;
    tb::synthetic_params(params);
    synthetic_classifier(classifier);

    // L1, frame by frame, as the reference backend runs it.
    static hw::DetectState<kernels::DetectConfig> detect;
    static hw::SortState<kernels::SortConfig> sort;
    hw::reset_detect(detect, params);
    hw::reset_sort(sort);
    std::vector<hw::SortedSpike> expected;
    auto sorted = [&](const hw::SortedSpike& s, const std::int32_t(*)[kernels::SortConfig::max_snippet_samples]) {
        expected.push_back(s);
    };
    auto queue = [&](const hw::SpikeEvent& e) { hw::sort_add(sort, e); };
    for (std::uint32_t f = 0; f < tb::kFrames; ++f) {
        hw::detect_one_frame(detect, params, data.data() + static_cast<std::size_t>(f) * tb::kChannels, queue);
        hw::sort_push_frame(sort, classifier, f, detect.referenced);
        hw::sort_advance(sort, classifier, f, sorted);
    }
    hw::detect_flush(detect, params, queue);
    hw::sort_flush(sort, classifier, detect.frame, sorted);

    bool ok = true;
    const std::uint32_t chunks[2] = {700, 1100};
    tb::Unit units[2] = {tb::Unit(true), tb::Unit(true)};
    std::vector<tb::Record> records[2];
    std::uint32_t next[2] = {0, 0};
    for (int u = 0; u < 2; ++u) {
        auto write = [&](std::uint32_t a, std::uint32_t v) { units[u].write(a, v); };
        hw::TableWriteStager stager;
        hw::program_detect_params(params, write);
        write(hw::sort_reg::control, hw::sort_reg::control_hold);
        hw::program_sort_params(stager, classifier, tb::kChannels, write);
        write(hw::sort_reg::control, hw::sort_reg::control_enable);
    }
    while (next[0] < tb::kFrames || next[1] < tb::kFrames) // the units take turns
        for (int u = 0; u < 2; ++u) {
            if (next[u] >= tb::kFrames)
                continue;
            const std::uint32_t n = tb::kFrames - next[u] < chunks[u] ? tb::kFrames - next[u] : chunks[u];
            units[u].run(data.data() + static_cast<std::size_t>(next[u]) * tb::kChannels, n, tb::control_of(next[u], n),
                         2048, records[u]);
            next[u] += n;
        }
    for (int u = 0; u < 2; ++u) {
        bool same = records[u].size() == expected.size();
        std::uint32_t labelled_10 = 0;
        for (std::size_t i = 0; same && i < expected.size(); ++i) {
            const hw::SortedSpike& a = expected[i];
            const hw::SortedSpike& b = records[u][i].spike;
            same = records[u][i].kind == hw::abi::kRecordSpike && a.event == b.event && a.unit == b.unit &&
                   a.template_id == b.template_id;
            for (int v = 0; same && v < kernels::SortConfig::n_values; ++v)
                same = a.features[v] == b.features[v];
            labelled_10 += b.event.channel == 10 && b.unit == 110;
        }
        std::printf("spikeline_sort unit %d (runs of %u frames): %zu spikes (L1: %zu), %s, %u of unit 110 on channel "
                    "10 (%u injected)\n",
                    u, chunks[u], records[u].size(), expected.size(), same ? "equal to L1" : "DIFFERENT from L1",
                    labelled_10, tb::kInjected);
        ok = ok && same && labelled_10 == tb::kInjected;
    }
    return ok ? 0 : 1;
}
