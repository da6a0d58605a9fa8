// The engine (spikeline_core: detection core + sorting stage) as an XRT RTL kernel: XRT's ap_ctrl_hs control
// registers on s_axi_control, the argument layout of hls/include/spikeline/hw/kernel_abi.hpp, one 512-bit AXI4 read
// master for frames and the parameter program (m_axi_gmem_in) and one 512-bit AXI4 write master for the output image
// (m_axi_gmem_out). docs/HARDWARE.md section 2 describes a run; kernels/rtl/ packages it.
//
// One run (ap_start .. ap_done):
//   1. the program's {address, value} pairs are replayed on the core's AXI4-Lite port; with kControlReset the core's
//      START (state clear) is written before the first write to the sorting stage, or after the program when it has
//      none, so the clear uses the detection parameters the program just wrote and the stage's write queue keeps
//      the table writes queued after it. A write to the stage's CONTROL with its hold bit waits for the stage idle.
//   2. n_frames x N_CHANNELS int16 samples stream from `frames` into the core, one per clock, if its stream is open
//      (START written and no FLUSH since; else the frames are skipped and the header's frame count shows it);
//   3. with kControlFlush (and the stream open): FLUSH, then (sorting on) the stage's end of stream; otherwise the run waits until the core
//      is quiet and the stage caught up, so a run's records are exactly those its frames allow (as L1 per frame);
//   4. the records (sorting on: sorted spikes and artefacts; off: events and artefacts) go to `output` after its
//      16-word header as they come, at most max_records of them (all are counted), then the header.
// `state` is never accessed: the engine keeps its state on chip. Buffers must be 64-byte aligned (XRT's are 4 KiB).
`default_nettype none

module spikeline_rtl #(
    parameter int MAX_CHANNELS = 1024,
    parameter int RING_FRAMES = 256,
    parameter int SORT_EVENT_DEPTH = 1024,
    parameter int WRITE_QUEUE_DEPTH = 16384,
    parameter int READ_FIFO_BEATS = 256, // gmem_in prefetch: bursts in flight are bounded by its free space
    parameter int READ_BURST_BEATS = 64, // 4 KiB
    parameter int WRITE_FIFO_BEATS = 64,
    parameter int MAX_GROUPS = 64
) (
    input  wire logic         ap_clk,
    input  wire logic         ap_rst_n,
    output logic              interrupt,

    input  wire logic [11:0]  s_axi_control_awaddr,
    input  wire logic         s_axi_control_awvalid,
    output logic              s_axi_control_awready,
    input  wire logic [31:0]  s_axi_control_wdata,
    input  wire logic [3:0]   s_axi_control_wstrb,
    input  wire logic         s_axi_control_wvalid,
    output logic              s_axi_control_wready,
    output logic [1:0]        s_axi_control_bresp,
    output logic              s_axi_control_bvalid,
    input  wire logic         s_axi_control_bready,
    input  wire logic [11:0]  s_axi_control_araddr,
    input  wire logic         s_axi_control_arvalid,
    output logic              s_axi_control_arready,
    output logic [31:0]       s_axi_control_rdata,
    output logic [1:0]        s_axi_control_rresp,
    output logic              s_axi_control_rvalid,
    input  wire logic         s_axi_control_rready,

    output logic [63:0]       m_axi_gmem_in_araddr,
    output logic [7:0]        m_axi_gmem_in_arlen,
    output logic [2:0]        m_axi_gmem_in_arsize,
    output logic [1:0]        m_axi_gmem_in_arburst,
    output logic              m_axi_gmem_in_arvalid,
    input  wire logic         m_axi_gmem_in_arready,
    input  wire logic [511:0] m_axi_gmem_in_rdata,
    input  wire logic [1:0]   m_axi_gmem_in_rresp,
    input  wire logic         m_axi_gmem_in_rlast,
    input  wire logic         m_axi_gmem_in_rvalid,
    output logic              m_axi_gmem_in_rready,

    output logic [63:0]       m_axi_gmem_out_awaddr,
    output logic [7:0]        m_axi_gmem_out_awlen,
    output logic [2:0]        m_axi_gmem_out_awsize,
    output logic [1:0]        m_axi_gmem_out_awburst,
    output logic              m_axi_gmem_out_awvalid,
    input  wire logic         m_axi_gmem_out_awready,
    output logic [511:0]      m_axi_gmem_out_wdata,
    output logic [63:0]       m_axi_gmem_out_wstrb,
    output logic              m_axi_gmem_out_wlast,
    output logic              m_axi_gmem_out_wvalid,
    input  wire logic         m_axi_gmem_out_wready,
    input  wire logic [1:0]   m_axi_gmem_out_bresp,
    input  wire logic         m_axi_gmem_out_bvalid,
    output logic              m_axi_gmem_out_bready
);
    localparam int READ_COUNT_BITS = $clog2(READ_FIFO_BEATS) + 1;
    localparam int WRITE_COUNT_BITS = $clog2(WRITE_FIFO_BEATS) + 1;

    // kernel_abi.hpp
    localparam logic [31:0] CONTROL_RESET = 32'd1;
    localparam logic [31:0] CONTROL_FLUSH = 32'd2;
    // register_map.hpp: the core's and the sorting stage's registers the kernel uses
    localparam logic [20:0] CORE_CONTROL = 21'h000;
    localparam logic [20:0] CORE_STATUS = 21'h004;
    localparam logic [20:0] CORE_N_CHANNELS = 21'h010;
    localparam logic [20:0] SORT_CONTROL = 21'h100000;
    localparam logic [20:0] SORT_COMMAND = 21'h100004;
    localparam logic [20:0] SORT_STATUS = 21'h100008;

    wire rst = !ap_rst_n;

    // ------------------------------------------------------------------------------------------------------------
    // s_axi_control: ap_ctrl_hs (0x00), GIE, IER, ISR, arguments at kernel_abi.hpp's kArgOffsets
    // ------------------------------------------------------------------------------------------------------------
    logic ap_start_reg, ap_done_reg, ap_ready_reg, auto_restart_reg, gie_reg;
    logic [1:0] ier_reg, isr_reg;
    logic [63:0] frames_address_reg, program_address_reg, output_address_reg, state_address_reg;
    logic [31:0] n_frames_reg, n_program_writes_reg, max_records_reg, control_reg;
    logic control_bvalid_reg, control_rvalid_reg;
    logic [31:0] control_rdata_reg;
    logic run_done; // the run ends this clock
    // profiling (0x80, 0x84, beyond the arguments): clocks of the last run from ap_start to ap_done, and from its
    // first sample into the engine to its last
    logic [31:0] run_cycles_reg, first_sample_cycle_reg, last_sample_cycle_reg;
    logic samples_seen_reg;

    wire control_write = s_axi_control_awvalid && s_axi_control_wvalid && !control_bvalid_reg;
    wire control_read = s_axi_control_arvalid && !control_rvalid_reg;
    wire [11:0] write_offset = {s_axi_control_awaddr[11:2], 2'b00};
    wire [31:0] control_wdata = s_axi_control_wdata;

    assign s_axi_control_awready = control_write;
    assign s_axi_control_wready = control_write;
    assign s_axi_control_bvalid = control_bvalid_reg;
    assign s_axi_control_bresp = 2'b00;
    assign s_axi_control_arready = control_read;
    assign s_axi_control_rvalid = control_rvalid_reg;
    assign s_axi_control_rdata = control_rdata_reg;
    assign s_axi_control_rresp = 2'b00;
    assign interrupt = gie_reg && (isr_reg != 2'b00);

    // the run's steps (section "The run" below)
    typedef enum logic [4:0] {
        M_IDLE,
        M_PROGRAM,
        M_PROGRAM_WRITE,
        M_HOLD_POLL,
        M_START,
        M_START_POLL,
        M_CHANNELS,
        M_ACTIVE,
        M_FRAMES,
        M_FLUSH,
        M_FLUSH_POLL,
        M_END_SORT,
        M_END_SORT_POLL,
        M_QUIET_CORE,
        M_QUIET_SORT,
        M_COUNTERS,
        M_DRAIN,
        M_RESPONSES,
        M_DONE
    } main_state_t;
    main_state_t state_reg;

    logic ap_idle;
    logic [31:0] control_read_value;
    always_comb begin
        case ({s_axi_control_araddr[11:2], 2'b00})
            12'h000: control_read_value = {24'd0, auto_restart_reg, 3'd0, ap_ready_reg, ap_idle, ap_done_reg,
                                           ap_start_reg};
            12'h004: control_read_value = {31'd0, gie_reg};
            12'h008: control_read_value = {30'd0, ier_reg};
            12'h00C: control_read_value = {30'd0, isr_reg};
            12'h010: control_read_value = frames_address_reg[31:0];
            12'h014: control_read_value = frames_address_reg[63:32];
            12'h01C: control_read_value = n_frames_reg;
            12'h024: control_read_value = program_address_reg[31:0];
            12'h028: control_read_value = program_address_reg[63:32];
            12'h030: control_read_value = n_program_writes_reg;
            12'h038: control_read_value = output_address_reg[31:0];
            12'h03C: control_read_value = output_address_reg[63:32];
            12'h044: control_read_value = max_records_reg;
            12'h04C: control_read_value = control_reg;
            12'h054: control_read_value = state_address_reg[31:0];
            12'h058: control_read_value = state_address_reg[63:32];
            12'h080: control_read_value = run_cycles_reg;
            12'h088: control_read_value = {27'd0, state_reg}; // where a run waits, for debugging on a card
            12'h084: control_read_value = samples_seen_reg ? last_sample_cycle_reg - first_sample_cycle_reg + 32'd1
                                                           : 32'd0;
            default: control_read_value = 32'd0;
        endcase
    end

    always_ff @(posedge ap_clk) begin
        if (rst) begin
            ap_start_reg <= 1'b0;
            ap_done_reg <= 1'b0;
            ap_ready_reg <= 1'b0;
            auto_restart_reg <= 1'b0;
            gie_reg <= 1'b0;
            ier_reg <= 2'b00;
            isr_reg <= 2'b00;
            control_bvalid_reg <= 1'b0;
            control_rvalid_reg <= 1'b0;
            control_rdata_reg <= 32'd0;
            frames_address_reg <= '0;
            program_address_reg <= '0;
            output_address_reg <= '0;
            state_address_reg <= '0;
            n_frames_reg <= '0;
            n_program_writes_reg <= '0;
            max_records_reg <= '0;
            control_reg <= '0;
        end else begin
            if (control_write)
                control_bvalid_reg <= 1'b1;
            else if (s_axi_control_bready)
                control_bvalid_reg <= 1'b0;
            if (control_read) begin
                control_rvalid_reg <= 1'b1;
                control_rdata_reg <= control_read_value;
            end else if (s_axi_control_rready) begin
                control_rvalid_reg <= 1'b0;
            end
            // ap_done and ap_ready clear when read (a new event in the same clock wins)
            if (control_read && {s_axi_control_araddr[11:2], 2'b00} == 12'h000) begin
                ap_done_reg <= 1'b0;
                ap_ready_reg <= 1'b0;
            end
            if (control_write) begin
                case (write_offset)
                    12'h000: begin
                        if (control_wdata[0])
                            ap_start_reg <= 1'b1;
                        auto_restart_reg <= control_wdata[7];
                    end
                    12'h004: gie_reg <= control_wdata[0];
                    12'h008: ier_reg <= control_wdata[1:0];
                    12'h00C: isr_reg <= isr_reg ^ control_wdata[1:0]; // toggle on write
                    12'h010: frames_address_reg[31:0] <= control_wdata;
                    12'h014: frames_address_reg[63:32] <= control_wdata;
                    12'h01C: n_frames_reg <= control_wdata;
                    12'h024: program_address_reg[31:0] <= control_wdata;
                    12'h028: program_address_reg[63:32] <= control_wdata;
                    12'h030: n_program_writes_reg <= control_wdata;
                    12'h038: output_address_reg[31:0] <= control_wdata;
                    12'h03C: output_address_reg[63:32] <= control_wdata;
                    12'h044: max_records_reg <= control_wdata;
                    12'h04C: control_reg <= control_wdata;
                    12'h054: state_address_reg[31:0] <= control_wdata;
                    12'h058: state_address_reg[63:32] <= control_wdata;
                    default: ;
                endcase
            end
            if (run_done) begin
                ap_done_reg <= 1'b1;
                ap_ready_reg <= 1'b1;
                ap_start_reg <= auto_restart_reg;
                isr_reg <= isr_reg | ier_reg;
            end
        end
    end

    // ------------------------------------------------------------------------------------------------------------
    // The engine and the AXI4-Lite master that writes and polls its registers
    // ------------------------------------------------------------------------------------------------------------
    logic [20:0] lite_address_reg;
    logic [31:0] lite_data_reg;
    logic core_awready, core_wready, core_bvalid, core_arready, core_rvalid;
    logic [1:0] core_bresp, core_rresp;
    logic [31:0] core_rdata;

    typedef enum logic [2:0] {
        L_IDLE,
        L_WRITE,
        L_WRITE_RESPONSE,
        L_READ,
        L_READ_RESPONSE
    } lite_state_t;
    lite_state_t lite_state_reg;
    // the request in progress completes this clock (core_rdata holds a read's value)
    wire lite_done = (lite_state_reg == L_WRITE_RESPONSE && core_bvalid) ||
                     (lite_state_reg == L_READ_RESPONSE && core_rvalid);

    logic [15:0] sample_data;
    logic sample_valid, sample_ready, sample_last;
    logic [127:0] event_tdata;
    logic event_tvalid, event_tready, event_tlast;
    logic [959:0] spike_tdata;
    logic spike_tvalid, spike_tready;
    logic [255:0] snippet_tdata;
    logic snippet_tvalid, snippet_tlast;
    logic monitor_valid;
    logic [15:0] monitor_channel;
    logic [20:0] monitor_sample;

    spikeline_core #(
        .MAX_CHANNELS(MAX_CHANNELS),
        .RING_FRAMES(RING_FRAMES),
        .SORT_EVENT_DEPTH(SORT_EVENT_DEPTH),
        .WRITE_QUEUE_DEPTH(WRITE_QUEUE_DEPTH)
    ) core (
        .clk(ap_clk),
        .rst(rst),
        .s_axis_tdata(sample_data),
        .s_axis_tvalid(sample_valid),
        .s_axis_tready(sample_ready),
        .s_axis_tlast(sample_last),
        .m_axis_tdata(event_tdata),
        .m_axis_tvalid(event_tvalid),
        .m_axis_tready(event_tready),
        .m_axis_tlast(event_tlast),
        .m_axis_spike_tdata(spike_tdata),
        .m_axis_spike_tvalid(spike_tvalid),
        .m_axis_spike_tready(spike_tready),
        .m_axis_snippet_tdata(snippet_tdata),
        .m_axis_snippet_tvalid(snippet_tvalid),
        .m_axis_snippet_tready(1'b1), // snippets are not part of the output image
        .m_axis_snippet_tlast(snippet_tlast),
        .s_axil_awaddr(lite_address_reg),
        .s_axil_awvalid(lite_state_reg == L_WRITE),
        .s_axil_awready(core_awready),
        .s_axil_wdata(lite_data_reg),
        .s_axil_wstrb(4'hF),
        .s_axil_wvalid(lite_state_reg == L_WRITE),
        .s_axil_wready(core_wready),
        .s_axil_bresp(core_bresp),
        .s_axil_bvalid(core_bvalid),
        .s_axil_bready(1'b1),
        .s_axil_araddr(lite_address_reg),
        .s_axil_arvalid(lite_state_reg == L_READ),
        .s_axil_arready(core_arready),
        .s_axil_rdata(core_rdata),
        .s_axil_rresp(core_rresp),
        .s_axil_rvalid(core_rvalid),
        .s_axil_rready(1'b1),
        .monitor_valid(monitor_valid),
        .monitor_channel(monitor_channel),
        .monitor_sample(monitor_sample)
    );

    // ------------------------------------------------------------------------------------------------------------
    // gmem_in: bursts into a prefetch FIFO, each only when the FIFO has room for all of it, so rready stays high and
    // up to READ_FIFO_BEATS / READ_BURST_BEATS bursts are in flight (hiding the memory's latency)
    // ------------------------------------------------------------------------------------------------------------
    logic [63:0] read_address_reg;
    logic [31:0] read_beats_left_reg; // not yet requested
    logic [READ_COUNT_BITS-1:0] read_in_flight_reg;
    logic read_ar_valid_reg;
    logic [63:0] read_ar_address_reg;
    logic [7:0] read_ar_len_reg;
    logic read_start;
    logic [63:0] read_start_address;
    logic [31:0] read_start_beats;

    logic [511:0] read_head;
    logic read_head_valid, read_pop;
    logic [READ_COUNT_BITS-1:0] read_count;

    spikeline_sync_fifo #(
        .WIDTH(512),
        .DEPTH(READ_FIFO_BEATS)
    ) read_fifo (
        .clk(ap_clk),
        .rst(rst),
        .clear(1'b0),
        .push(m_axi_gmem_in_rvalid),
        .push_data(m_axi_gmem_in_rdata),
        .pop(read_pop),
        .head(read_head),
        .head_valid(read_head_valid),
        .full(),
        .count(read_count)
    );

    // a burst stops at the next 4 KiB boundary, at READ_BURST_BEATS and at the end of the buffer
    wire [6:0] beats_to_4k = 7'd64 - {1'b0, read_address_reg[11:6]};
    logic [31:0] read_burst;
    always_comb begin
        read_burst = 32'(READ_BURST_BEATS);
        if (32'(beats_to_4k) < read_burst)
            read_burst = 32'(beats_to_4k);
        if (read_beats_left_reg < read_burst)
            read_burst = read_beats_left_reg;
    end
    wire read_issue = !read_ar_valid_reg && read_beats_left_reg != 0 &&
                      32'(read_count) + 32'(read_in_flight_reg) + read_burst <= 32'(READ_FIFO_BEATS);

    assign m_axi_gmem_in_araddr = read_ar_address_reg;
    assign m_axi_gmem_in_arlen = read_ar_len_reg;
    assign m_axi_gmem_in_arsize = 3'd6; // 64 bytes
    assign m_axi_gmem_in_arburst = 2'b01;
    assign m_axi_gmem_in_arvalid = read_ar_valid_reg;
    assign m_axi_gmem_in_rready = 1'b1; // room was reserved when the burst was requested

    always_ff @(posedge ap_clk) begin
        if (rst) begin
            read_address_reg <= '0;
            read_beats_left_reg <= '0;
            read_in_flight_reg <= '0;
            read_ar_valid_reg <= 1'b0;
            read_ar_address_reg <= '0;
            read_ar_len_reg <= '0;
        end else begin
            read_in_flight_reg <= read_in_flight_reg + (read_issue ? READ_COUNT_BITS'(read_burst) : '0) -
                                  READ_COUNT_BITS'(m_axi_gmem_in_rvalid);
            if (read_issue) begin
                read_ar_valid_reg <= 1'b1;
                read_ar_address_reg <= read_address_reg;
                read_ar_len_reg <= 8'(read_burst - 32'd1);
                read_address_reg <= read_address_reg + {26'd0, read_burst, 6'd0};
                read_beats_left_reg <= read_beats_left_reg - read_burst;
            end else if (m_axi_gmem_in_arready) begin
                read_ar_valid_reg <= 1'b0;
            end
            if (read_start) begin // only while nothing is requested or buffered
                read_address_reg <= read_start_address;
                read_beats_left_reg <= read_start_beats;
            end
        end
    end

    // ------------------------------------------------------------------------------------------------------------
    // Frames: 32 samples per beat into s_axis, tlast on the last channel
    // ------------------------------------------------------------------------------------------------------------
    logic [47:0] samples_left_reg;
    logic [4:0] sample_lane_reg;
    logic [15:0] channel_reg, n_channels_reg;

    assign sample_valid = samples_left_reg != 0 && read_head_valid;
    assign sample_data = read_head[16 * sample_lane_reg +: 16];
    assign sample_last = channel_reg == n_channels_reg - 16'd1;
    wire sample_transfer = sample_valid && sample_ready;

    // ------------------------------------------------------------------------------------------------------------
    // Records: one from the stage's sorted spikes or the core's events and artefacts, written as two beats
    // ------------------------------------------------------------------------------------------------------------
    logic collecting_reg;    // a run is in progress: records are taken
    logic sorting_reg;       // the program enabled the sorting stage (CONTROL bit 0): events go to it, not out
    logic second_beat_pending_reg;
    logic [511:0] second_beat_reg;
    logic [31:0] records_reg; // this run's records, written or not
    logic [15:0] first_channel_reg [0:MAX_GROUPS-1]; // per reference group: its lowest channel (artefact records)
    logic [MAX_GROUPS-1:0] first_channel_valid_reg;

    logic [511:0] write_head;
    logic write_head_valid, write_pop, write_push;
    logic [511:0] write_push_data;
    logic [WRITE_COUNT_BITS-1:0] write_count;

    spikeline_sync_fifo #(
        .WIDTH(512),
        .DEPTH(WRITE_FIFO_BEATS)
    ) write_fifo (
        .clk(ap_clk),
        .rst(rst),
        .clear(1'b0),
        .push(write_push),
        .push_data(write_push_data),
        .pop(write_pop),
        .head(write_head),
        .head_valid(write_head_valid),
        .full(),
        .count(write_count)
    );

    wire record_room = collecting_reg && !second_beat_pending_reg &&
                       32'(write_count) + 32'd2 <= 32'(WRITE_FIFO_BEATS);
    wire take_spike = record_room && spike_tvalid;
    wire take_event = record_room && !spike_tvalid && event_tvalid;
    wire event_is_artifact = event_tdata[80];
    wire new_record = take_spike || (take_event && (event_is_artifact || !sorting_reg));
    wire keep_record = new_record && records_reg < max_records_reg;
    assign spike_tready = take_spike;
    assign event_tready = take_event;

    // kernel_abi.hpp RecordWord: kind, sample (2), channel, amplitude, unit, template, 24 features, 0
    logic [1023:0] record;
    always_comb begin
        if (take_spike)
            record = {32'd0, spike_tdata[959:192], spike_tdata[191:0], 32'd1};
        else if (event_is_artifact) // channel field: the group; amplitude field: the crossings counted
            record = {32'd0, 768'd0, 32'hFFFFFFFF, 32'hFFFFFFFF, event_tdata[127:96],
                      16'd0, first_channel_reg[event_tdata[69:64]], event_tdata[63:0], 32'd2};
        else
            record = {32'd0, 768'd0, 32'hFFFFFFFF, 32'hFFFFFFFF, event_tdata[127:96], 16'd0, event_tdata[79:64],
                      event_tdata[63:0], 32'd0};
    end
    assign write_push = keep_record || second_beat_pending_reg;
    assign write_push_data = second_beat_pending_reg ? second_beat_reg : record[511:0];

    // ------------------------------------------------------------------------------------------------------------
    // gmem_out: record beats from output + 64 in bursts that end at 1 KiB boundaries (never crossing 4 KiB), a
    // burst issued once its beats are buffered (at the end of the run: what is left); then the header beat at output
    // ------------------------------------------------------------------------------------------------------------
    logic [31:0] beats_pushed_reg, beats_requested_reg, beats_sent_reg;
    logic [31:0] bursts_reg, responses_reg;
    logic draining_reg, header_aw_reg, header_w_reg;
    logic aw_valid_reg;
    logic [63:0] aw_address_reg;
    logic [7:0] aw_len_reg;
    logic [511:0] header_beat;

    wire [63:0] next_burst_address = output_address_reg + 64'd64 + {26'd0, beats_requested_reg, 6'd0};
    wire [4:0] beats_to_block_end = 5'd16 - {1'b0, next_burst_address[9:6]};
    wire [31:0] beats_waiting = beats_pushed_reg - beats_requested_reg;
    wire [31:0] write_burst = beats_waiting < 32'(beats_to_block_end) ? beats_waiting : 32'(beats_to_block_end);
    wire write_issue = !aw_valid_reg && beats_waiting != 0 &&
                       (beats_waiting >= 32'(beats_to_block_end) || draining_reg);
    wire [63:0] sent_address = output_address_reg + 64'd64 + {26'd0, beats_sent_reg, 6'd0};
    wire record_w_valid = !header_w_reg && beats_sent_reg != beats_requested_reg && write_head_valid;

    assign m_axi_gmem_out_awaddr = aw_address_reg;
    assign m_axi_gmem_out_awlen = aw_len_reg;
    assign m_axi_gmem_out_awsize = 3'd6;
    assign m_axi_gmem_out_awburst = 2'b01;
    assign m_axi_gmem_out_awvalid = aw_valid_reg;
    assign m_axi_gmem_out_wvalid = header_w_reg || record_w_valid;
    assign m_axi_gmem_out_wdata = header_w_reg ? header_beat : write_head;
    assign m_axi_gmem_out_wstrb = {64{1'b1}};
    assign m_axi_gmem_out_wlast = header_w_reg || sent_address[9:6] == 4'hF ||
                                  (draining_reg && beats_sent_reg + 32'd1 == beats_pushed_reg);
    assign m_axi_gmem_out_bready = 1'b1;
    assign write_pop = record_w_valid && m_axi_gmem_out_wready;

    // ------------------------------------------------------------------------------------------------------------
    // The run
    // ------------------------------------------------------------------------------------------------------------

    logic started_reg;         // this run has written START
    logic stream_open_reg;     // the engine's stream was open when this run's frames were due
    logic groups_fresh_reg;    // this run's program has rewritten the group table
    logic hold_written_reg;    // the write in progress set the stage's hold bit
    logic [31:0] pairs_done_reg;
    logic [2:0] counter_index_reg;
    logic [31:0] header_reg [1:7]; // kernel_abi.hpp OutputHeader words 1..7 (word 0: records_reg)

    assign ap_idle = state_reg == M_IDLE;
    assign run_done = state_reg == M_DONE;

    // the program: {u32 address, u32 value} pairs, 8 per beat
    wire [63:0] pair = read_head[64 * pairs_done_reg[2:0] +: 64];
    wire [20:0] pair_address = pair[20:0];
    wire [31:0] pair_value = pair[63:32];
    wire program_finished = pairs_done_reg == n_program_writes_reg;
    wire start_now = (control_reg & CONTROL_RESET) != 0 && !started_reg && (program_finished || pair_address[20]);
    wire take_pair = state_reg == M_PROGRAM && !program_finished && read_head_valid && !start_now;
    wire pair_group_of = pair_address[20:16] == 5'h01 && !pair_value[7] && 32'(pair_value[6:0]) < MAX_GROUPS;
    wire [15:0] pair_channel = {2'b00, pair_address[15:2]};
    wire [5:0] pair_group = pair_value[5:0];
    wire [47:0] run_samples = 48'(n_frames_reg) * 48'(n_channels_reg);
    // frames go in only while a stream is open (START written, no FLUSH since): otherwise the engine would never take
    // them and the run would not end; the header's unchanged frame count then tells the host
    wire stream_open = core_rdata[3] && !core_rdata[1];

    assign read_pop = take_pair ? (pairs_done_reg[2:0] == 3'd7 || pairs_done_reg + 32'd1 == n_program_writes_reg)
                                : sample_transfer && (sample_lane_reg == 5'd31 || samples_left_reg == 48'd1);

    always_comb begin
        read_start = 1'b0;
        read_start_address = program_address_reg;
        read_start_beats = (n_program_writes_reg + 32'd7) >> 3;
        if (state_reg == M_IDLE && ap_start_reg) begin
            read_start = 1'b1;
        end else if (state_reg == M_ACTIVE && lite_done && stream_open) begin
            read_start = 1'b1;
            read_start_address = frames_address_reg;
            read_start_beats = 32'((run_samples + 48'd31) >> 5);
        end
    end

    assign header_beat = {256'd0, header_reg[7], header_reg[6], header_reg[5], header_reg[4], header_reg[3],
                          header_reg[2], header_reg[1], records_reg};

    always_ff @(posedge ap_clk) begin
        if (rst) begin
            state_reg <= M_IDLE;
            lite_state_reg <= L_IDLE;
            lite_address_reg <= '0;
            lite_data_reg <= '0;
            samples_left_reg <= '0;
            sample_lane_reg <= '0;
            channel_reg <= '0;
            n_channels_reg <= 16'd1;
            collecting_reg <= 1'b0;
            sorting_reg <= 1'b0;
            second_beat_pending_reg <= 1'b0;
            second_beat_reg <= '0;
            records_reg <= '0;
            first_channel_valid_reg <= '0;
            beats_pushed_reg <= '0;
            beats_requested_reg <= '0;
            beats_sent_reg <= '0;
            bursts_reg <= '0;
            responses_reg <= '0;
            draining_reg <= 1'b0;
            header_aw_reg <= 1'b0;
            header_w_reg <= 1'b0;
            aw_valid_reg <= 1'b0;
            aw_address_reg <= '0;
            aw_len_reg <= '0;
            started_reg <= 1'b0;
            stream_open_reg <= 1'b0;
            groups_fresh_reg <= 1'b0;
            hold_written_reg <= 1'b0;
            pairs_done_reg <= '0;
            counter_index_reg <= '0;
            run_cycles_reg <= '0;
            first_sample_cycle_reg <= '0;
            last_sample_cycle_reg <= '0;
            samples_seen_reg <= 1'b0;
        end else begin
            // AXI4-Lite master (a request the run issues below overrides the return to L_IDLE)
            case (lite_state_reg)
                L_WRITE: if (core_awready && core_wready) lite_state_reg <= L_WRITE_RESPONSE;
                L_READ: if (core_arready) lite_state_reg <= L_READ_RESPONSE;
                L_WRITE_RESPONSE: if (core_bvalid) lite_state_reg <= L_IDLE;
                L_READ_RESPONSE: if (core_rvalid) lite_state_reg <= L_IDLE;
                default: ;
            endcase

            if (state_reg != M_IDLE)
                run_cycles_reg <= run_cycles_reg + 32'd1;
            if (sample_transfer) begin
                if (!samples_seen_reg)
                    first_sample_cycle_reg <= run_cycles_reg;
                samples_seen_reg <= 1'b1;
                last_sample_cycle_reg <= run_cycles_reg;
            end

            // frames
            if (sample_transfer) begin
                samples_left_reg <= samples_left_reg - 48'd1;
                sample_lane_reg <= sample_lane_reg + 5'd1;
                channel_reg <= sample_last ? 16'd0 : channel_reg + 16'd1;
            end

            // records
            second_beat_pending_reg <= keep_record;
            if (keep_record)
                second_beat_reg <= record[1023:512];
            if (new_record)
                records_reg <= records_reg + 32'd1;
            beats_pushed_reg <= beats_pushed_reg + 32'(keep_record) + 32'(second_beat_pending_reg);

            // gmem_out
            if (write_issue) begin
                aw_valid_reg <= 1'b1;
                aw_address_reg <= next_burst_address;
                aw_len_reg <= 8'(write_burst - 32'd1);
                beats_requested_reg <= beats_requested_reg + write_burst;
                bursts_reg <= bursts_reg + 32'd1;
            end else if (aw_valid_reg && m_axi_gmem_out_awready) begin
                aw_valid_reg <= 1'b0;
            end
            if (write_pop)
                beats_sent_reg <= beats_sent_reg + 32'd1;
            if (header_w_reg && m_axi_gmem_out_wready)
                header_w_reg <= 1'b0;
            if (m_axi_gmem_out_bvalid)
                responses_reg <= responses_reg + 32'd1;

            case (state_reg)
                M_IDLE: begin
                    if (ap_start_reg) begin
                        state_reg <= M_PROGRAM;
                        pairs_done_reg <= '0;
                        started_reg <= 1'b0;
                        groups_fresh_reg <= 1'b0;
                        collecting_reg <= 1'b1;
                        records_reg <= '0;
                        beats_pushed_reg <= '0;
                        beats_requested_reg <= '0;
                        beats_sent_reg <= '0;
                        bursts_reg <= '0;
                        responses_reg <= '0;
                        draining_reg <= 1'b0;
                        header_aw_reg <= 1'b0;
                        run_cycles_reg <= 32'd1;
                        samples_seen_reg <= 1'b0;
                    end
                end
                M_PROGRAM: begin
                    if (start_now) begin
                        lite_state_reg <= L_WRITE;
                        lite_address_reg <= CORE_CONTROL;
                        lite_data_reg <= 32'd1; // START
                        state_reg <= M_START;
                    end else if (program_finished) begin
                        lite_state_reg <= L_READ;
                        lite_address_reg <= CORE_N_CHANNELS;
                        state_reg <= M_CHANNELS;
                    end else if (take_pair) begin
                        lite_state_reg <= L_WRITE;
                        lite_address_reg <= pair_address;
                        lite_data_reg <= pair_value;
                        pairs_done_reg <= pairs_done_reg + 32'd1;
                        hold_written_reg <= pair_address == SORT_CONTROL && pair_value[1];
                        if (pair_address == SORT_CONTROL)
                            sorting_reg <= pair_value[0];
                        // the lowest channel of each group, for artefact records; a program that writes the group
                        // table writes all of it (register_program.hpp), so its first such write starts afresh
                        if (pair_address[20:16] == 5'h01) begin
                            groups_fresh_reg <= 1'b1;
                            if (!groups_fresh_reg)
                                first_channel_valid_reg <= '0;
                        end
                        if (pair_group_of && (!groups_fresh_reg || !first_channel_valid_reg[pair_group] ||
                                              pair_channel < first_channel_reg[pair_group])) begin
                            first_channel_valid_reg[pair_group] <= 1'b1;
                            first_channel_reg[pair_group] <= pair_channel;
                        end
                        state_reg <= M_PROGRAM_WRITE;
                    end
                end
                M_PROGRAM_WRITE: begin
                    if (lite_done) begin
                        if (hold_written_reg) begin
                            lite_state_reg <= L_READ;
                            lite_address_reg <= SORT_STATUS;
                            state_reg <= M_HOLD_POLL;
                        end else begin
                            state_reg <= M_PROGRAM;
                        end
                    end
                end
                M_HOLD_POLL: begin
                    if (lite_done) begin
                        if (core_rdata[0])
                            state_reg <= M_PROGRAM;
                        else
                            lite_state_reg <= L_READ;
                    end
                end
                M_START: begin
                    if (lite_done) begin
                        lite_state_reg <= L_READ;
                        lite_address_reg <= CORE_STATUS;
                        state_reg <= M_START_POLL;
                    end
                end
                M_START_POLL: begin
                    if (lite_done) begin
                        if (!core_rdata[0]) begin // the state clear is over
                            started_reg <= 1'b1;
                            state_reg <= M_PROGRAM;
                        end else begin
                            lite_state_reg <= L_READ;
                        end
                    end
                end
                M_CHANNELS: begin
                    if (lite_done) begin
                        n_channels_reg <= core_rdata[15:0];
                        lite_state_reg <= L_READ;
                        lite_address_reg <= CORE_STATUS;
                        state_reg <= M_ACTIVE;
                    end
                end
                M_ACTIVE: begin
                    if (lite_done) begin
                        samples_left_reg <= stream_open ? run_samples : 48'd0;
                        stream_open_reg <= stream_open;
                        sample_lane_reg <= '0;
                        channel_reg <= '0;
                        state_reg <= M_FRAMES;
                    end
                end
                M_FRAMES: begin
                    if (samples_left_reg == 48'd0) begin
                        if ((control_reg & CONTROL_FLUSH) != 0 && stream_open_reg) begin
                            lite_state_reg <= L_WRITE;
                            lite_address_reg <= CORE_CONTROL;
                            lite_data_reg <= 32'd2; // FLUSH
                            state_reg <= M_FLUSH;
                        end else if (stream_open_reg) begin
                            lite_state_reg <= L_READ;
                            lite_address_reg <= CORE_STATUS;
                            state_reg <= M_QUIET_CORE;
                        end else begin // no frames went in: nothing is in flight (and a flushed core stays done)
                            lite_state_reg <= L_READ;
                            lite_address_reg <= 21'h080;
                            counter_index_reg <= 3'd0;
                            state_reg <= M_COUNTERS;
                        end
                    end
                end
                M_FLUSH: begin
                    if (lite_done) begin
                        lite_state_reg <= L_READ;
                        lite_address_reg <= CORE_STATUS;
                        state_reg <= M_FLUSH_POLL;
                    end
                end
                M_FLUSH_POLL: begin
                    if (lite_done) begin
                        if (core_rdata[1] && sorting_reg) begin // the core's end of stream; then the stage's
                            lite_state_reg <= L_WRITE;
                            lite_address_reg <= SORT_COMMAND;
                            lite_data_reg <= 32'd8;
                            state_reg <= M_END_SORT;
                        end else if (core_rdata[1]) begin
                            lite_state_reg <= L_READ;
                            lite_address_reg <= 21'h080;
                            counter_index_reg <= 3'd0;
                            state_reg <= M_COUNTERS;
                        end else begin
                            lite_state_reg <= L_READ;
                        end
                    end
                end
                M_END_SORT: begin
                    if (lite_done) begin
                        lite_state_reg <= L_READ;
                        lite_address_reg <= SORT_STATUS;
                        state_reg <= M_END_SORT_POLL;
                    end
                end
                M_END_SORT_POLL, M_QUIET_SORT: begin
                    if (lite_done) begin
                        // END_SORT_POLL: the stage's end of stream; QUIET_SORT: it has caught up
                        if (state_reg == M_END_SORT_POLL ? core_rdata[1] : core_rdata[2]) begin
                            lite_state_reg <= L_READ;
                            lite_address_reg <= 21'h080;
                            counter_index_reg <= 3'd0;
                            state_reg <= M_COUNTERS;
                        end else begin
                            lite_state_reg <= L_READ;
                        end
                    end
                end
                M_QUIET_CORE: begin
                    if (lite_done) begin
                        lite_state_reg <= L_READ;
                        if (core_rdata[4]) begin
                            lite_address_reg <= SORT_STATUS;
                            state_reg <= M_QUIET_SORT;
                        end
                    end
                end
                M_COUNTERS: begin
                    if (lite_done) begin
                        header_reg[counter_index_reg + 3'd1] <= core_rdata;
                        counter_index_reg <= counter_index_reg + 3'd1;
                        if (counter_index_reg == 3'd6) begin
                            collecting_reg <= 1'b0;
                            state_reg <= M_DRAIN;
                        end else begin
                            lite_state_reg <= L_READ;
                            case (counter_index_reg)
                                3'd0: lite_address_reg <= 21'h084;     // frames, high word
                                3'd1: lite_address_reg <= 21'h088;     // dropped (bounded work)
                                3'd2: lite_address_reg <= 21'h100020;  // the stage's dropped events
                                3'd3: lite_address_reg <= 21'h100024;  // the stage's dropped table writes
                                3'd4: lite_address_reg <= 21'h090;     // artefacts
                                default: lite_address_reg <= 21'h094;  // artefact candidates
                            endcase
                        end
                    end
                end
                M_DRAIN: begin
                    // the last record's second beat is in; then every record beat is requested and sent
                    if (!second_beat_pending_reg)
                        draining_reg <= 1'b1;
                    if (draining_reg && beats_requested_reg == beats_pushed_reg && beats_sent_reg == beats_pushed_reg &&
                        !aw_valid_reg && !header_aw_reg) begin
                        header_aw_reg <= 1'b1;
                        aw_valid_reg <= 1'b1;
                        aw_address_reg <= output_address_reg;
                        aw_len_reg <= 8'd0;
                        bursts_reg <= bursts_reg + 32'd1;
                        header_w_reg <= 1'b1;
                        state_reg <= M_RESPONSES;
                    end
                end
                M_RESPONSES: begin
                    if (!aw_valid_reg && !header_w_reg && responses_reg == bursts_reg)
                        state_reg <= M_DONE;
                end
                M_DONE: state_reg <= M_IDLE;
                default: state_reg <= M_IDLE;
            endcase
        end
    end

    // the engine's other outputs are not used here
    wire unused = &{1'b0, event_tlast, snippet_tdata, snippet_tvalid, snippet_tlast, monitor_valid, monitor_channel,
                    monitor_sample, core_bresp, core_rresp, m_axi_gmem_in_rresp, m_axi_gmem_in_rlast,
                    m_axi_gmem_out_bresp, s_axi_control_wstrb, 1'b0};
endmodule

`default_nettype wire
