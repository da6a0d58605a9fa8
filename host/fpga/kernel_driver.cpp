// Output images are read word by word (no struct casts): the layout is kernel_abi.hpp's, not the host's structs.
#include "fpga/kernel_driver.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <cstring>

namespace spikeline {
namespace fpga {

namespace abi = hw::abi;

std::uint64_t max_records_of_run(std::uint64_t n_frames) {
    return n_frames * static_cast<std::uint64_t>(hw::DetectConfig::max_frame_decisions + hw::DetectConfig::max_groups) +
           static_cast<std::uint64_t>(hw::DetectConfig::max_pending + hw::SortConfig::max_waiting);
}

std::uint32_t default_max_records(std::uint64_t chunk_frames) {
    return static_cast<std::uint32_t>(chunk_frames * hw::DetectConfig::max_frame_decisions +
                                      hw::DetectConfig::max_groups + hw::DetectConfig::max_pending +
                                      hw::SortConfig::max_waiting);
}

void decode_output(const std::uint32_t* image, std::size_t image_words, std::uint32_t max_records,
                   std::uint64_t max_plausible_records, const std::int16_t* group_of, int n_channels,
                   DecodedOutput& out) {
    const std::string rebuild = ": is the xclbin built from this version of kernels/? (make -C kernels xclbin)";
    const std::size_t needed = abi::kOutputHeaderWords + static_cast<std::size_t>(max_records) * abi::kRecordWords;
    require(image_words >= needed, "the kernel's output image holds " + std::to_string(image_words) +
                                       " words, its header and " + std::to_string(max_records) + " records need " +
                                       std::to_string(needed));
    OutputCounters header;
    header.records = image[abi::kHeaderRecords];
    header.frames = image[abi::kHeaderFramesLow] | std::uint64_t{image[abi::kHeaderFramesHigh]} << 32;
    header.dropped_events = image[abi::kHeaderDroppedEvents];
    header.dropped_sort = image[abi::kHeaderDroppedSort];
    header.dropped_writes = image[abi::kHeaderDroppedWrites];
    header.artifacts = image[abi::kHeaderArtifacts];
    header.artifact_candidates = image[abi::kHeaderArtifactCands];
    require(header.records <= max_plausible_records,
            "the kernel's output header claims " + std::to_string(header.records) + " records for one run, more than " +
                std::to_string(max_plausible_records) + " it can produce: the output image is corrupt" + rebuild);
    out.last = header;
    const std::uint32_t kept = std::min(header.records, max_records);
    out.records_lost += header.records - kept;
    for (std::uint32_t r = 0; r < kept; ++r) {
        const std::uint32_t* word = image + abi::kOutputHeaderWords + static_cast<std::size_t>(r) * abi::kRecordWords;
        const hw::SortedSpike spike = abi::read_record(word);
        const auto channel = static_cast<std::uint32_t>(spike.event.channel);
        const std::string where = "output record " + std::to_string(r) + " of " + std::to_string(header.records);
        require(channel < static_cast<std::uint32_t>(n_channels), where + " names channel " + std::to_string(channel) +
                                                                      " of a stream of " + std::to_string(n_channels) +
                                                                      " channels" + rebuild);
        const hw::SpikeEvent& event = spike.event;
        switch (word[abi::kRecordKind]) {
        case abi::kRecordEvent:
            out.events.push_back(event);
            break;
        case abi::kRecordSpike:
            out.events.push_back(event);
            out.spikes.push_back(spike);
            break;
        case abi::kRecordArtifact:
            // channel: the first channel of the group; amplitude: the crossings counted
            out.artifacts.push_back({event.sample, group_of[channel], event.amplitude});
            break;
        default:
            throw InputError(where + " has kind " + std::to_string(word[abi::kRecordKind]) +
                             " (0 event, 1 sorted spike, 2 artefact)" + rebuild);
        }
    }
}

static_assert(abi::kMaxFeatures >= hw::SortConfig::n_values, "a record holds every feature of a sorted spike");

StreamProgram::StreamProgram(std::shared_ptr<const HwParams> params) : params_(std::move(params)) {}

void StreamProgram::write(std::uint32_t address, std::uint32_t value) {
    pending_.push_back(address);
    pending_.push_back(value);
}

void StreamProgram::write_sort_params() {
    // hold: the stage starts nothing while its tables change (the engine's order, as hw_sim's harness writes it)
    write(hw::sort_reg::control, hw::sort_reg::control_hold);
    hw::program_sort_params(stager_, *sort_params_, params_->n_channels,
                            [this](std::uint32_t address, std::uint32_t value) { write(address, value); });
    write(hw::sort_reg::control, hw::sort_reg::control_enable);
}

void StreamProgram::set_sorting(std::shared_ptr<const HwSortParams> params) {
    sort_params_ = std::move(params);
    if (!new_stream_) // a new stream's first run writes it after the detection parameters
        write_sort_params();
}

void StreamProgram::queue_table_writes(const std::vector<hw::TableWrite>& writes) {
    if (new_stream_) { // staged after the classifier, in the stream's first run
        deferred_.insert(deferred_.end(), writes.begin(), writes.end());
        return;
    }
    for (const hw::TableWrite& table_write : writes)
        hw::program_table_write(stager_, table_write,
                                [this](std::uint32_t address, std::uint32_t value) { write(address, value); });
}

std::uint32_t StreamProgram::take_run(std::vector<std::uint32_t>& words, bool flush) {
    words.clear();
    std::uint32_t control = flush ? abi::kControlFlush : 0;
    if (new_stream_) {
        control |= abi::kControlReset;
        const auto append = [&words](std::uint32_t address, std::uint32_t value) {
            words.push_back(address);
            words.push_back(value);
        };
        hw::program_detect_params(*params_, append);
        append(hw::sort_reg::control, 0);
        new_stream_ = false;
        // the engine was cleared: the classifier goes again, staged word by word from nothing
        pending_.clear();
        stager_.forget();
        if (sort_params_)
            write_sort_params();
        std::vector<hw::TableWrite> deferred;
        deferred.swap(deferred_);
        queue_table_writes(deferred);
    }
    words.insert(words.end(), pending_.begin(), pending_.end());
    pending_.clear();
    return control;
}

void StreamProgram::restart() {
    pending_.clear();
    deferred_.clear();
    stager_.forget();
    new_stream_ = true;
}

DirectRunEngine::DirectRunEngine(KernelExecutor execute, std::size_t chunk_frames, int n_channels,
                                 std::uint32_t max_records, std::size_t state_bytes)
    : execute_(std::move(execute)), max_records_(max_records),
      frames_(chunk_frames * static_cast<std::size_t>(n_channels)),
      output_(abi::kOutputHeaderWords + static_cast<std::size_t>(max_records) * abi::kRecordWords),
      state_((state_bytes + 7) / 8) {}

std::uint32_t* DirectRunEngine::program(std::size_t, std::size_t writes) {
    program_.resize(std::max<std::size_t>(2, 2 * writes));
    return program_.data();
}

void DirectRunEngine::start(std::size_t, const RunArgs& args) {
    execute_(frames_.data(), args.n_frames, program_.data(), args.n_program_writes, output_.data(), max_records_,
             args.control, state_.data());
}

KernelDriver::KernelDriver(std::unique_ptr<RunEngine> engine, std::shared_ptr<const HwParams> params,
                           std::size_t chunk_frames, int channel_offset)
    : engine_(std::move(engine)), program_(std::move(params)), chunk_frames_(chunk_frames),
      channel_offset_(channel_offset), n_channels_(program_.params().n_channels) {}

void KernelDriver::process(const std::int16_t* frames, std::size_t n_frames, int stride) {
    const auto width = static_cast<std::size_t>(n_channels_);
    while (n_frames > 0) {
        if (staged_frames_ == 0 && in_flight_.size() == engine_->slots())
            collect(); // the oldest run's slot is the next to fill
        const std::size_t take = std::min(chunk_frames_ - staged_frames_, n_frames);
        std::int16_t* to = engine_->frames(slot_) + staged_frames_ * width;
        for (std::size_t f = 0; f < take; ++f)
            std::memcpy(to + f * width, frames + f * static_cast<std::size_t>(stride) + channel_offset_,
                        width * sizeof(std::int16_t));
        staged_frames_ += take;
        frames += take * static_cast<std::size_t>(stride);
        n_frames -= take;
        if (staged_frames_ == chunk_frames_)
            submit(false);
    }
    // Finished runs hand their output back now, not when their slot is needed again (up to slots() chunks later).
    while (!in_flight_.empty() && engine_->finished(in_flight_.front().first))
        collect();
}

void KernelDriver::finish() {
    if (staged_frames_ == 0 && in_flight_.size() == engine_->slots())
        collect();
    submit(true); // the partial chunk (possibly empty) with the flush bit
    while (!in_flight_.empty())
        collect();
    program_.restart();
    stream_frames_ = 0;
}

void KernelDriver::submit(bool flush) {
    const std::uint32_t control = program_.take_run(words_, flush);
    const std::size_t writes = words_.size() / 2;
    if (writes > 0)
        std::memcpy(engine_->program(slot_, writes), words_.data(), words_.size() * sizeof(std::uint32_t));
    const auto n_frames = static_cast<std::uint32_t>(staged_frames_);
    engine_->start(slot_, {n_frames, static_cast<std::uint32_t>(writes), control});
    ++runs_started_;
    program_writes_sent_ += writes;
    in_flight_.emplace_back(slot_, n_frames);
    slot_ = (slot_ + 1) % engine_->slots();
    staged_frames_ = 0;
}

void KernelDriver::collect() {
    const auto [slot, n_frames] = in_flight_.front();
    const std::uint32_t* image = engine_->wait(slot); // throws RunNotFinished; the caller restarts
    in_flight_.pop_front();
    ++runs_collected_;
    stream_frames_ += n_frames;
    const std::size_t first_event = output_.events.size();
    const std::size_t first_spike = output_.spikes.size();
    decode_output(image, engine_->output_words(), engine_->max_records(), max_records_of_run(n_frames),
                  program_.params().group_of, n_channels_, output_);
    for (std::size_t i = first_event; i < output_.events.size(); ++i)
        output_.events[i].channel += channel_offset_;
    for (std::size_t i = first_spike; i < output_.spikes.size(); ++i)
        output_.spikes[i].event.channel += channel_offset_;
}

std::string KernelDriver::restart() {
    std::vector<std::size_t> slots;
    for (const auto& run : in_flight_)
        slots.push_back(run.first);
    in_flight_.clear();
    const std::string done = engine_->reset(slots);
    staged_frames_ = 0;
    slot_ = 0;
    stream_frames_ = 0;
    program_.restart();
    return done;
}

} // namespace fpga
} // namespace spikeline
