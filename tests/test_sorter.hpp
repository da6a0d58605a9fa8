#pragma once
// A sorter for co-simulation tests (test_rtl, test_rtl_kernel): a random basis and classifier entries at spikes the
// reference backend found, so that the RTL's snippet, projection, gates and ties all see work.
#include "backend/backend.hpp"
#include "probe/probe.hpp"
#include "sort/sort_settings.hpp"

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

namespace spikeline::testing {

/// A sorter for `data`: a random basis (so that features are not only the calibration's), and classifier entries
/// whose centroids are the features of spikes L1 found, with gates from 0 to beyond the typical distance, an
/// entry with a negative template id (L1 then takes any later entry within its gate) and channels without entries.
inline std::shared_ptr<HwSortParams> test_sorter(const HwParams& detect, const std::vector<std::int16_t>& data,
                                                 std::mt19937& rng) {
    const probe::Probe probe = probe::default_probe(detect.n_channels);
    auto sorter = sort::make_sort_params(sort::SortSettings{}, probe, 30000, detect);
    const int width = sorter->pre + 1 + sorter->post;
    std::uniform_int_distribution<int> basis(-16384, 16383);
    for (int p = 0; p < HwSortConfig::n_features; ++p)
        for (int t = 0; t < width; ++t)
            sorter->basis[p][t] = static_cast<std::int16_t>(basis(rng));
    auto reference = make_reference_backend(detect);
    reference->enable_sorting(sorter, false);
    std::vector<SpikeEvent> events;
    reference->process(data.data(), data.size() / static_cast<std::size_t>(detect.n_channels), events);
    reference->finish(events);
    SortOutput found;
    reference->take_sorted(found);
    int next_template = 0;
    for (const hw::SortedSpike& spike : found.spikes) {
        const int ch = spike.event.channel;
        if (ch % 5 == 4 || sorter->n_entries[ch] == HwSortConfig::max_entries || rng() % 3 != 0)
            continue; // every fifth channel keeps no entries
        hw::ClassifierEntry& entry = sorter->entries[ch][sorter->n_entries[ch]++];
        entry.unit = next_template % 7;
        entry.template_id = next_template % 5 == 3 ? -1 : next_template;
        ++next_template;
        std::int64_t norm = 0;
        for (int v = 0; v < HwSortConfig::n_values; ++v) {
            entry.centroid[v] = spike.features[v];
            norm += std::int64_t{spike.features[v]} * spike.features[v];
        }
        entry.gate = std::uniform_int_distribution<std::int64_t>(0, norm / 2 + 1)(rng);
    }
    return sorter;
}

} // namespace spikeline::testing
