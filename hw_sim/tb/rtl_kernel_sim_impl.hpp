#pragma once
// The kernel co-simulation, generic over the Verilated model (every size has the same ports). Included once per
// model by rtl_kernel_<size>.cpp, so each model's generated headers stay in one translation unit.
#include "rtl_kernel_sim.hpp"

#include <verilated.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <random>
#include <string>

namespace spikeline::rtl {

template <class MODEL> class VerilatedKernel final : public RtlKernelSim {
public:
    VerilatedKernel(int max_channels, const MemoryTiming& timing)
        : max_channels_(max_channels), timing_(timing), context_(std::make_unique<VerilatedContext>()),
          random_(timing.seed) {
        if (timing.read_latency_min < 1 || timing.read_latency_max < timing.read_latency_min ||
            timing.write_latency_min < 1 || timing.write_latency_max < timing.write_latency_min)
            throw std::invalid_argument("memory latencies must satisfy 1 <= min <= max");
        model_ = std::make_unique<MODEL>(context_.get(), "kernel");
        model_->ap_rst_n = 0;
        for (int i = 0; i < 4; ++i)
            tick();
        model_->ap_rst_n = 1;
        tick();
    }

    ~VerilatedKernel() override { model_->final(); }

    int max_channels() const override { return max_channels_; }

    std::uint64_t allocate(std::size_t bytes) override {
        const std::uint64_t address = kMemoryBase + memory_.size();
        const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + kPage - 1) / kPage * kPage;
        memory_.resize(memory_.size() + rounded, 0);
        return address;
    }

    void write_memory(std::uint64_t address, const void* data, std::size_t bytes) override {
        std::memcpy(&memory_[offset(address, bytes)], data, bytes);
    }

    void read_memory(std::uint64_t address, void* data, std::size_t bytes) override {
        std::memcpy(data, &memory_[offset(address, bytes)], bytes);
    }

    void forbid(std::uint64_t address, std::size_t bytes) override {
        forbidden_begin_ = address;
        forbidden_end_ = address + bytes;
    }

    std::uint32_t read_control(std::uint32_t address) override {
        model_->s_axi_control_araddr = static_cast<std::uint16_t>(address);
        model_->s_axi_control_arvalid = 1;
        model_->s_axi_control_rready = 1;
        wait_for_handshake([this] { return model_->s_axi_control_arready != 0; });
        model_->s_axi_control_arvalid = 0;
        std::uint32_t value = 0;
        wait_for_handshake([this, &value] {
            value = model_->s_axi_control_rdata;
            return model_->s_axi_control_rvalid != 0;
        });
        model_->s_axi_control_rready = 0;
        return value;
    }

    void write_control(std::uint32_t address, std::uint32_t value) override {
        model_->s_axi_control_awaddr = static_cast<std::uint16_t>(address);
        model_->s_axi_control_wdata = value;
        model_->s_axi_control_wstrb = 0xF;
        model_->s_axi_control_awvalid = 1;
        model_->s_axi_control_wvalid = 1;
        model_->s_axi_control_bready = 1;
        wait_for_handshake([this] { return model_->s_axi_control_awready != 0 && model_->s_axi_control_wready != 0; });
        model_->s_axi_control_awvalid = 0;
        model_->s_axi_control_wvalid = 0;
        wait_for_handshake([this] { return model_->s_axi_control_bvalid != 0; });
        model_->s_axi_control_bready = 0;
    }

    // Verilator renames the port `interrupt` (a common C++ word)
    bool interrupt() const override { return model_->__SYM__interrupt != 0; }

    void idle(std::uint64_t clocks) override {
        for (std::uint64_t i = 0; i < clocks; ++i)
            tick();
    }

    KernelRunStats run(const KernelArgs& args, bool use_interrupt) override {
        using namespace hw::abi;
        memory_stats_ = {};
        const std::uint64_t pointers[] = {args.frames, args.program, args.output, args.state};
        const std::uint32_t scalars[] = {args.n_frames, args.n_program_writes, args.max_records, args.control};
        const int pointer_args[] = {kArgFrames, kArgProgram, kArgOutput, kArgState};
        const int scalar_args[] = {kArgNFrames, kArgNProgramWrites, kArgMaxRecords, kArgControl};
        for (int i = 0; i < 4; ++i) {
            write_control(kArgOffsets[pointer_args[i]], static_cast<std::uint32_t>(pointers[i]));
            write_control(kArgOffsets[pointer_args[i]] + 4, static_cast<std::uint32_t>(pointers[i] >> 32));
            write_control(kArgOffsets[scalar_args[i]], scalars[i]);
        }
        write_control(kGie, 1);
        write_control(kIer, kApDoneBit);
        // a generous bound on a run's clocks: beyond it the kernel hangs
        const std::uint64_t limit =
            1'000'000 + 20 * (std::uint64_t{args.n_frames} * static_cast<std::uint64_t>(max_channels_) +
                              args.n_program_writes + args.max_records);
        const std::uint64_t start = cycle_;
        write_control(kApControl, kApStartBit);
        if (use_interrupt) {
            while (!interrupt())
                tick_checked(start, limit);
            const std::uint32_t status = read_control(kIsr);
            if ((status & kApDoneBit) == 0)
                throw KernelProtocolError("the interrupt rose without ISR's ap_done bit");
            write_control(kIsr, kApDoneBit); // toggle on write: clears it
            if (interrupt())
                throw KernelProtocolError("the interrupt stayed high after ISR was cleared");
            if ((read_control(kApControl) & kApDoneBit) == 0)
                throw KernelProtocolError("the interrupt rose before ap_done");
        } else {
            while ((read_control(kApControl) & kApDoneBit) == 0)
                tick_checked(start, limit);
        }
        KernelRunStats stats;
        stats.clocks = cycle_ - start;
        stats.run_cycles = read_control(kRunCycles);
        stats.stream_cycles = read_control(kStreamCycles);
        stats.memory = memory_stats_;
        if (!reads_.empty() || !writes_.empty() || !responses_.empty())
            throw KernelProtocolError("ap_done with memory transactions still in flight");
        return stats;
    }

    static constexpr std::uint32_t kApControl = 0x00, kGie = 0x04, kIer = 0x08, kIsr = 0x0C;
    static constexpr std::uint32_t kRunCycles = 0x80, kStreamCycles = 0x84, kRunState = 0x88;
    static constexpr std::uint32_t kApStartBit = 1, kApDoneBit = 2;

private:
    static constexpr std::uint64_t kMemoryBase = 0x1'2340'0000ULL; ///< above 4 GiB: pointers need both words
    static constexpr std::size_t kPage = 4096;
    static constexpr std::size_t kBeat = 64;

    struct Burst {
        std::uint64_t address;
        unsigned beats;
        unsigned done = 0;
        std::uint64_t due = 0; ///< reads: first beat no earlier
    };

    std::size_t offset(std::uint64_t address, std::size_t bytes) const {
        if (address < kMemoryBase || address - kMemoryBase + bytes > memory_.size())
            throw KernelProtocolError("access outside card memory at 0x" + hex(address));
        return static_cast<std::size_t>(address - kMemoryBase);
    }

    static std::string hex(std::uint64_t value) {
        char text[20];
        std::snprintf(text, sizeof text, "%llx", static_cast<unsigned long long>(value));
        return text;
    }

    // AXI4 rules the kernel's bursts must keep: INCR, 64-byte beats, aligned, inside one 4 KiB page, inside memory.
    Burst check_burst(const char* what, std::uint64_t address, unsigned len, unsigned size, unsigned burst) const {
        const unsigned beats = len + 1;
        if (size != 6 || burst != 1)
            throw KernelProtocolError(std::string(what) + ": burst type or size is not INCR of 64 bytes");
        if (address % kBeat != 0)
            throw KernelProtocolError(std::string(what) + ": address 0x" + hex(address) + " is not 64-byte aligned");
        if (address % kPage + beats * kBeat > kPage)
            throw KernelProtocolError(std::string(what) + ": burst at 0x" + hex(address) + " of " +
                                      std::to_string(beats) + " beats crosses a 4 KiB boundary");
        offset(address, beats * kBeat);
        if (address < forbidden_end_ && address + beats * kBeat > forbidden_begin_)
            throw KernelProtocolError(std::string(what) + ": the kernel touched the state buffer");
        return Burst{address, beats};
    }

    unsigned draw_latency(unsigned low, unsigned high) {
        return std::uniform_int_distribution<unsigned>(low, high)(random_);
    }

    bool stall() {
        return timing_.backpressure > 0 && std::uniform_real_distribution<double>(0, 1)(random_) < timing_.backpressure;
    }

    template <class CONDITION> void wait_for_handshake(CONDITION&& done) {
        for (std::uint64_t clocks = 0; !tick_observe(done); ++clocks)
            if (clocks > 100'000)
                throw KernelProtocolError("s_axi_control did not answer");
    }

    void tick_checked(std::uint64_t start, std::uint64_t limit) {
        tick();
        if (cycle_ - start > limit)
            throw KernelProtocolError("no ap_done after " + std::to_string(limit) + " clocks (run state " +
                                      std::to_string(read_control(kRunState)) + ")");
    }

    void tick() {
        tick_observe([] { return true; });
    }

    // One clock: the memory drives its side, the model settles, the handshakes are observed before the rising edge.
    template <class OBSERVE> bool tick_observe(OBSERVE&& observe) {
        MODEL& m = *model_;
        m.m_axi_gmem_in_arready = !stall();
        const bool read_offer = !reads_.empty() && reads_.front().due <= cycle_ && !stall();
        if (read_offer) {
            const Burst& burst = reads_.front();
            const std::uint8_t* beat = &memory_[offset(burst.address + burst.done * kBeat, kBeat)];
            for (int word = 0; word < 16; ++word)
                std::memcpy(&m.m_axi_gmem_in_rdata[word], beat + 4 * word, 4);
            m.m_axi_gmem_in_rlast = burst.done + 1 == burst.beats;
            m.m_axi_gmem_in_rresp = 0;
        }
        m.m_axi_gmem_in_rvalid = read_offer;
        m.m_axi_gmem_out_awready = !stall();
        // data only for an address already taken (a slave may wait for it)
        const bool write_ready = !writes_.empty() && !stall();
        m.m_axi_gmem_out_wready = write_ready;
        const bool response_offer = !responses_.empty() && responses_.front() <= cycle_ && !stall();
        m.m_axi_gmem_out_bvalid = response_offer;
        m.m_axi_gmem_out_bresp = 0;
        m.ap_clk = 0;
        m.eval();
        const bool observed = observe();

        if (m.m_axi_gmem_in_arvalid && m.m_axi_gmem_in_arready) {
            Burst burst = check_burst("gmem_in read", m.m_axi_gmem_in_araddr, m.m_axi_gmem_in_arlen,
                                      m.m_axi_gmem_in_arsize, m.m_axi_gmem_in_arburst);
            burst.due = cycle_ + draw_latency(timing_.read_latency_min, timing_.read_latency_max);
            reads_.push_back(burst);
            ++memory_stats_.read_bursts;
            memory_stats_.max_reads_outstanding =
                std::max(memory_stats_.max_reads_outstanding, static_cast<unsigned>(reads_.size()));
        }
        if (read_offer && m.m_axi_gmem_in_rready) {
            ++memory_stats_.read_beats;
            if (++reads_.front().done == reads_.front().beats)
                reads_.pop_front();
        }
        if (m.m_axi_gmem_out_awvalid && m.m_axi_gmem_out_awready) {
            writes_.push_back(check_burst("gmem_out write", m.m_axi_gmem_out_awaddr, m.m_axi_gmem_out_awlen,
                                          m.m_axi_gmem_out_awsize, m.m_axi_gmem_out_awburst));
            ++memory_stats_.write_bursts;
        }
        if (write_ready && m.m_axi_gmem_out_wvalid) {
            Burst& burst = writes_.front();
            const bool last = burst.done + 1 == burst.beats;
            if ((m.m_axi_gmem_out_wlast != 0) != last)
                throw KernelProtocolError("gmem_out: wlast " + std::to_string(m.m_axi_gmem_out_wlast) + " on beat " +
                                          std::to_string(burst.done + 1) + " of " + std::to_string(burst.beats));
            std::uint8_t* beat = &memory_[offset(burst.address + burst.done * kBeat, kBeat)];
            const std::uint64_t strobe = m.m_axi_gmem_out_wstrb;
            for (int byte = 0; byte < 64; ++byte)
                if ((strobe >> byte) & 1u) {
                    const std::uint32_t word = m.m_axi_gmem_out_wdata[byte / 4];
                    beat[byte] = static_cast<std::uint8_t>(word >> (8 * (byte % 4)));
                }
            ++memory_stats_.write_beats;
            if (++burst.done == burst.beats) {
                writes_.pop_front();
                responses_.push_back(cycle_ + draw_latency(timing_.write_latency_min, timing_.write_latency_max));
            }
        }
        if (response_offer && m.m_axi_gmem_out_bready)
            responses_.pop_front();

        m.ap_clk = 1;
        m.eval();
        ++cycle_;
        return observed;
    }

    int max_channels_;
    MemoryTiming timing_;
    std::unique_ptr<VerilatedContext> context_;
    std::unique_ptr<MODEL> model_;
    std::mt19937_64 random_;
    std::vector<std::uint8_t> memory_;
    std::uint64_t forbidden_begin_ = 0, forbidden_end_ = 0;
    std::deque<Burst> reads_;             ///< accepted, not fully answered, in order
    std::deque<Burst> writes_;            ///< accepted, data not complete, in order
    std::deque<std::uint64_t> responses_; ///< write responses, due clock
    MemoryStats memory_stats_;
    std::uint64_t cycle_ = 0;
};

} // namespace spikeline::rtl
