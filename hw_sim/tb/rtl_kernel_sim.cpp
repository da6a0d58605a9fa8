#include "rtl_kernel_sim.hpp"

#include <cstring>
#include <string>

namespace spikeline::rtl {

std::unique_ptr<RtlKernelSim> make_rtl_kernel_64(const MemoryTiming& timing);
std::unique_ptr<RtlKernelSim> make_rtl_kernel_1024(const MemoryTiming& timing);

std::vector<int> available_kernel_sizes() {
    return {64, 1024};
}

std::unique_ptr<RtlKernelSim> make_rtl_kernel_sim(int channels, const MemoryTiming& timing) {
    if (channels >= 1 && channels <= 64)
        return make_rtl_kernel_64(timing);
    if (channels >= 1 && channels <= 1024)
        return make_rtl_kernel_1024(timing);
    throw std::invalid_argument(std::to_string(channels) + " channels: no verilated kernel holds them (1..1024)");
}

namespace {

constexpr std::uint8_t kUnwritten = 0xA5; ///< the output buffer's filling before a run: what the kernel left alone

void ensure(RtlKernelSim& kernel, CardBuffer& buffer, std::size_t bytes) {
    if (bytes > buffer.capacity) {
        buffer.address = kernel.allocate(bytes);
        buffer.capacity = bytes;
    }
}

} // namespace

KernelOutput RtlKernelDriver::run(const std::vector<std::uint32_t>& program, const std::int16_t* frames,
                                  std::size_t n_frames, int n_channels, std::uint32_t control,
                                  std::uint32_t max_records, bool use_interrupt) {
    using namespace hw::abi;
    KernelArgs args;
    const std::size_t frame_bytes = n_frames * static_cast<std::size_t>(n_channels) * sizeof(std::int16_t);
    const std::size_t program_bytes = program.size() * sizeof(std::uint32_t);
    const std::size_t output_bytes = (kOutputHeaderWords + std::size_t{max_records} * kRecordWords) * 4;
    ensure(*kernel_, frames_, frame_bytes);
    ensure(*kernel_, program_, program_bytes);
    ensure(*kernel_, output_, output_bytes + 64); // one beat past the image: must stay unwritten
    if (state_.capacity == 0) {
        ensure(*kernel_, state_, 4096);
        kernel_->forbid(state_.address, state_.capacity);
    }
    if (frame_bytes > 0)
        kernel_->write_memory(frames_.address, frames, frame_bytes);
    if (program_bytes > 0)
        kernel_->write_memory(program_.address, program.data(), program_bytes);
    const std::vector<std::uint8_t> filling(output_bytes + 64, kUnwritten);
    kernel_->write_memory(output_.address, filling.data(), filling.size());

    args.frames = frames_.address;
    args.n_frames = static_cast<std::uint32_t>(n_frames);
    args.program = program_.address;
    args.n_program_writes = static_cast<std::uint32_t>(program.size() / 2);
    args.output = output_.address;
    args.max_records = max_records;
    args.control = control;
    args.state = state_.address;

    KernelOutput out;
    out.stats = kernel_->run(args, use_interrupt);
    out.stats.samples = n_frames * static_cast<std::uint64_t>(n_channels);

    std::vector<std::uint32_t> image(output_bytes / 4 + 16);
    kernel_->read_memory(output_.address, image.data(), image.size() * 4);
    std::memcpy(out.header, image.data(), sizeof out.header);
    const std::size_t written = std::min<std::size_t>(out.header[kHeaderRecords], max_records);
    for (std::size_t r = 0; r < written; ++r) {
        const std::uint32_t* word = &image[kOutputHeaderWords + r * kRecordWords];
        KernelRecord record;
        record.kind = word[kRecordKind];
        record.sample = (std::uint64_t{word[kRecordSampleHigh]} << 32) | word[kRecordSampleLow];
        record.channel = static_cast<std::int32_t>(word[kRecordChannel]);
        record.amplitude = static_cast<std::int32_t>(word[kRecordAmplitude]);
        record.unit = static_cast<std::int32_t>(word[kRecordUnit]);
        record.template_id = static_cast<std::int32_t>(word[kRecordTemplate]);
        for (int v = 0; v < kMaxFeatures; ++v)
            record.features[v] = static_cast<std::int32_t>(word[kRecordFeatures + v]);
        record.last_word = word[kRecordWords - 1];
        out.records.push_back(record);
    }
    // nothing past the last record written
    const std::size_t end_word = kOutputHeaderWords + written * kRecordWords;
    for (std::size_t w = end_word; w < end_word + 16; ++w)
        if (image[w] != 0xA5A5A5A5u)
            throw KernelProtocolError("the kernel wrote past its last record (word " + std::to_string(w) + ")");
    return out;
}

} // namespace spikeline::rtl
