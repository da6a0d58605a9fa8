#pragma once
// The backend's sorting stage on the host, for spikes whose snippets are already at hand: the calibration pass sorts
// the first seconds of a recording with no classifier and keeps every snippet; once the classifier is learnt, these
// spikes are labelled here instead of detected again. The L1 functions (hw::compute_features, hw::classify) and the
// same rule for table writes (each applies to the spikes of its sample and later) give the labels, features and
// template ids a backend would have given them.
#include "backend/backend.hpp"

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

namespace spikeline::sort {

class SnippetLabeller {
public:
    /// Labels with a copy of params (its basis, snippet geometry and classifier table).
    explicit SnippetLabeller(const HwSortParams& params);

    /// Queues classifier-table writes (samples not decreasing); each applies from its sample on.
    void queue_writes(const std::vector<hw::TableWrite>& writes);
    /// Recomputes the features and labels of `sorted`'s spikes (in sample order, as a backend emits them) from their
    /// snippets (snippet_channels x (pre + 1 + post) values each), applying the writes due before each spike.
    /// Throws std::logic_error when the snippets do not match the spikes.
    void label(SortOutput& sorted);
    /// Labels one spike from its snippet (as label() does).
    void label(hw::SortedSpike& spike, const std::int32_t* snippet);

    /// A copy of the table with the writes queued before `sample` applied (the queue is left as it is).
    std::shared_ptr<HwSortParams> table_with_writes_before(std::uint64_t sample) const;
    /// Writes still queued (their samples are past every spike labelled so far).
    const std::deque<hw::TableWrite>& pending_writes() const { return writes_; }

private:
    void apply_writes_until(std::uint64_t sample);

    std::unique_ptr<HwSortParams> params_;
    std::deque<hw::TableWrite> writes_;
};

} // namespace spikeline::sort
