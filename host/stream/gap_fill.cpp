#include "stream/gap_fill.hpp"

#include <algorithm>
#include <limits>

namespace spikeline::stream {

GapFiller::GapFiller(std::size_t n_channels, std::size_t history_frames)
    : n_channels_(n_channels), capacity_(std::max<std::size_t>(1, history_frames)), history_(capacity_ * n_channels, 0),
      end_mismatch_(n_channels, 0) {}

void GapFiller::remember(const std::int16_t* frames, std::size_t n_frames) {
    const std::size_t keep = std::min(n_frames, capacity_);
    for (std::size_t f = n_frames - keep; f < n_frames; ++f) {
        newest_ = (newest_ + 1) % capacity_;
        std::copy_n(frames + f * n_channels_, n_channels_, history_.begin() + newest_ * n_channels_);
    }
    held_ = std::min(capacity_, held_ + keep);
}

// Frame i of the fill: the history read backwards from the newest frame, then forwards, and so on (a mirror keeps
// the signal continuous where it turns).
const std::int16_t* GapFiller::mirrored(std::uint64_t i) const {
    if (held_ == 0)
        return nullptr;
    std::uint64_t back = 0; // frames back from the newest
    if (held_ > 1) {
        const std::uint64_t period = 2 * (held_ - 1);
        const std::uint64_t k = i % period;
        back = k < held_ ? k : period - k;
    }
    const std::size_t slot = (newest_ + capacity_ - static_cast<std::size_t>(back)) % capacity_;
    return history_.data() + slot * n_channels_;
}

void GapFiller::begin(std::uint64_t n_frames, const std::int16_t* next_frame) {
    fill_frames_ = n_frames;
    produced_ = 0;
    const std::int16_t* last = n_frames > 0 ? mirrored(n_frames - 1) : nullptr;
    for (std::size_t c = 0; c < n_channels_; ++c)
        end_mismatch_[c] = next_frame != nullptr ? std::int64_t{next_frame[c]} - (last != nullptr ? last[c] : 0) : 0;
}

void GapFiller::produce(std::size_t n_frames, std::int16_t* out) {
    const auto denominator = static_cast<std::int64_t>(fill_frames_ + 1);
    for (std::size_t f = 0; f < n_frames; ++f, ++produced_) {
        const std::int16_t* source = mirrored(produced_);
        // Bent linearly from 0 at the gap's start to the whole mismatch at the frame after it (rounded to nearest).
        const auto weight = static_cast<std::int64_t>(produced_ + 1);
        for (std::size_t c = 0; c < n_channels_; ++c) {
            const std::int64_t product = end_mismatch_[c] * weight;
            const std::int64_t bend =
                (product >= 0 ? product + denominator / 2 : product - denominator / 2) / denominator;
            const std::int64_t value = (source != nullptr ? source[c] : 0) + bend;
            out[f * n_channels_ + c] = static_cast<std::int16_t>(std::clamp<std::int64_t>(
                value, std::numeric_limits<std::int16_t>::min(), std::numeric_limits<std::int16_t>::max()));
        }
    }
}

void GapBlanking::add_gap(std::uint64_t first, std::uint64_t n) {
    const std::uint64_t end = first + n + blank_after_;
    if (!spans_.empty() && first <= spans_.back().second)
        spans_.back().second = std::max(spans_.back().second, end);
    else
        spans_.emplace_back(first, end);
}

bool GapBlanking::blanked(std::uint64_t sample) const {
    for (const auto& [first, end] : spans_)
        if (sample >= first && sample < end)
            return true;
    return false;
}

void GapBlanking::forget_before(std::uint64_t sample) {
    while (!spans_.empty() && spans_.front().second <= sample)
        spans_.pop_front();
}

} // namespace spikeline::stream
