#pragma once
// What the reference and CPU backends share around the L1 sorting stage: its parameters and the collected output.
#include "backend/backend.hpp"

#include <memory>

namespace spikeline {

class SortStageOutput {
public:
    void enable(std::shared_ptr<const HwSortParams> params, bool keep_snippets);
    bool enabled() const { return params_ != nullptr; }
    const HwSortParams& params() const { return *params_; }

    /// Appends a sorted spike and, when kept, its snippet (compacted to pre + 1 + post columns).
    void add(const hw::SortedSpike& spike,
             const std::int32_t snippet[HwSortConfig::snippet_channels][HwSortConfig::max_snippet_samples]);
    void take(SortOutput& out);

private:
    std::shared_ptr<const HwSortParams> params_;
    bool keep_snippets_ = false;
    SortOutput pending_;
};

} // namespace spikeline
