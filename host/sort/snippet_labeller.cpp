#include "sort/snippet_labeller.hpp"

#include <stdexcept>

namespace spikeline::sort {

SnippetLabeller::SnippetLabeller(const HwSortParams& params) : params_(std::make_unique<HwSortParams>(params)) {}

void SnippetLabeller::queue_writes(const std::vector<hw::TableWrite>& writes) {
    for (const hw::TableWrite& write : writes) {
        if (!writes_.empty() && write.sample < writes_.back().sample)
            throw std::logic_error("SnippetLabeller: table writes must come in sample order");
        writes_.push_back(write);
    }
}

void SnippetLabeller::apply_writes_until(std::uint64_t sample) {
    while (!writes_.empty() && writes_.front().sample <= sample) {
        hw::apply_table_write(*params_, writes_.front());
        writes_.pop_front();
    }
}

void SnippetLabeller::label(hw::SortedSpike& spike, const std::int32_t* snippet) {
    const int width = params_->pre + 1 + params_->post;
    std::int32_t rows[HwSortConfig::snippet_channels][HwSortConfig::max_snippet_samples];
    for (int k = 0; k < HwSortConfig::snippet_channels; ++k)
        for (int s = 0; s < width; ++s)
            rows[k][s] = snippet[k * width + s];
    apply_writes_until(spike.event.sample);
    hw::compute_features<HwSortConfig>(*params_, rows, spike.features);
    hw::classify<HwSortConfig>(*params_, spike.event.channel, spike.features, spike.unit, spike.template_id);
}

void SnippetLabeller::label(SortOutput& sorted) {
    const auto values = static_cast<std::size_t>(HwSortConfig::snippet_channels * (params_->pre + 1 + params_->post));
    if (sorted.snippets.size() != sorted.spikes.size() * values)
        throw std::logic_error("SnippetLabeller: every spike needs its snippet");
    for (std::size_t i = 0; i < sorted.spikes.size(); ++i)
        label(sorted.spikes[i], &sorted.snippets[i * values]);
}

std::shared_ptr<HwSortParams> SnippetLabeller::table_with_writes_before(std::uint64_t sample) const {
    auto table = std::make_shared<HwSortParams>(*params_);
    for (const hw::TableWrite& write : writes_)
        if (write.sample < sample)
            hw::apply_table_write(*table, write);
    return table;
}

} // namespace spikeline::sort
