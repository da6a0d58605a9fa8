// The sorting stage of L1 (hls/include/spikeline/hw/sorter.hpp) behind the detection core, bit-exact with it:
// snippet, projection onto the temporal basis, nearest-centroid classification with the gate, and the classifier
// table writes applied at their sample.
//
//   referenced samples (the core's monitor port, one per clock) -> ring of RING_FRAMES frames in LANES banks
//   (bank = frame % LANES, so one read per bank gives LANES consecutive samples of one channel)
//   events (a copy of every m_axis transfer of the core) -> event FIFO (EVENT_FIFO_DEPTH; full: dropped, counted)
//   -> one event at a time, once frame sample + post has been referenced:
//        CHANNELS  its snippet channels and entry count are read
//        SNIPPET   8 rows x ceil((pre + 1 + post) / LANES) reads; per read LANES samples are rotated into order,
//                  masked (channel -1, before frame 0, past the end of the stream, past the snippet), sent to the
//                  snippet stream, multiplied by the basis (3 x LANES products) and summed per row
//        CLASSIFY  one entry per clock: 24 differences, squares, sum (64-bit), gate and best (ties: lower index)
//        EMIT      the sorted spike
//   table writes (host) -> write queue (WRITE_QUEUE_DEPTH; full: dropped, counted) -> applied, one per clock, before
//   the next spike of a sample at or after theirs, or once RING_FRAMES frames have been referenced since their
//   sample (every spike before them is sorted by then: L1's rule)
//
// Register map (byte offsets within the stage's region; hw_sim/README.md):
//   0x000 CONTROL   RW  bit 0 enable (take events, fill the ring), 1 hold (start nothing: table loads), 2 snippets
//   0x004 COMMAND   W   bit 0 queue the staged write, 1 apply the staged write now (while held), 2 clear the write
//                       queue, 3 end of stream (FLUSH)
//   0x008 STATUS    R   bit 0 idle (no spike or write in progress), 1 done (end of stream: every spike sent)
//   0x00C N_CHANNELS, 0x010 PRE, 0x014 POST  RW
//   0x018/0x01C FRAMES (referenced, low/high) R; 0x020 DROPPED_EVENTS R; 0x024 DROPPED_WRITES R;
//   0x028 QUEUED_WRITES R; 0x02C SORTED R; 0x030 MAX_CHANNELS R
//   0x100 staged write: +0x00 sample low, +0x04 high, +0x08 channel, +0x0C slot (-1: none), +0x10 n_entries,
//         +0x14 unit, +0x18 template id, +0x1C gate low, +0x20 gate high, +0x80 + 4 v centroid[v] (v < 24)
//   0x400 + 4 (64 p + s)  basis[p][s] (signed 16 bits)
//   0x10000 + 4 (8 channel + k)  snippet_channels[channel][k] (signed 16 bits, -1: none)
`default_nettype none

module spikeline_sort_stage #(
    parameter int MAX_CHANNELS = 1024,
    parameter int RING_FRAMES = 256,
    parameter int EVENT_FIFO_DEPTH = 1024,
    parameter int WRITE_QUEUE_DEPTH = 16384
) (
    input  wire logic          clk,
    input  wire logic          rst,
    input  wire logic          stream_start,    // the core's START: frame count, queues and counters cleared

    input  wire logic          reg_write,
    input  wire logic [19:0]   reg_write_address,
    input  wire logic [31:0]   reg_write_data,
    input  wire logic [19:0]   reg_read_address,
    output logic [31:0]        reg_read_data,

    input  wire logic          monitor_valid,
    input  wire logic [15:0]   monitor_channel,
    input  wire logic [20:0]   monitor_sample,

    input  wire logic          event_valid,     // {amplitude[20:0], channel[15:0], sample[63:0]}
    input  wire logic [100:0]  event_data,

    // {features[v] at 192 + 32 v, template id[191:160], unit[159:128], amplitude[127:96], channel[95:64],
    //  sample[63:0]}
    output logic [959:0]       m_axis_spike_tdata,
    output logic               m_axis_spike_tvalid,
    input  wire logic          m_axis_spike_tready,
    // LANES samples of one snippet row per transfer (sample s at 32 s, sign-extended), rows in order, tlast on the
    // spike's last transfer
    output logic [255:0]       m_axis_snippet_tdata,
    output logic               m_axis_snippet_tvalid,
    input  wire logic          m_axis_snippet_tready,
    output logic               m_axis_snippet_tlast
);
    localparam int CHANNEL_BITS = $clog2(MAX_CHANNELS);
    localparam int LANES = 8;
    localparam int ROWS = 8;              // SortConfig::snippet_channels
    localparam int MAX_SAMPLES = 64;      // SortConfig::max_snippet_samples
    localparam int FEATURES = 3;          // SortConfig::n_features
    localparam int VALUES = FEATURES * ROWS;
    localparam int MAX_ENTRIES = 8;       // SortConfig::max_entries
    localparam int BASIS_FRAC_BITS = 14;  // SortConfig::basis_frac_bits
    localparam int BANK_ROW_BITS = $clog2(RING_FRAMES / LANES);
    localparam int ENTRY_BITS = 896;      // centroid[v] at 32 v, unit 799:768, template 831:800, gate 895:832
    localparam int WRITE_BITS = 992;      // {n_entries[7:0], slot[7:0], channel[15:0], sample[63:0], entry}
    localparam int SNIPPET_FIFO_DEPTH = 16;
    localparam int SPIKE_FIFO_DEPTH = 2;

    initial begin
        if (RING_FRAMES % LANES != 0 || (RING_FRAMES & (RING_FRAMES - 1)) != 0)
            $error("RING_FRAMES must be a power of two and a multiple of LANES");
    end

    // ------------------------------------------------------------------------------------------------------------
    // Registers
    // ------------------------------------------------------------------------------------------------------------
    logic enable_reg, hold_reg, snippets_reg, end_reg;
    logic [15:0] n_channels_reg;
    logic [5:0] pre_reg, post_reg;
    logic signed [15:0] basis_reg [0:FEATURES*MAX_SAMPLES-1];
    logic [63:0] staged_sample_reg;
    logic [15:0] staged_channel_reg;
    logic [7:0] staged_slot_reg, staged_count_reg;
    logic [31:0] staged_unit_reg, staged_template_reg;
    logic [63:0] staged_gate_reg;
    logic [31:0] staged_centroid_reg [0:VALUES-1];
    logic [63:0] frames_reg;              // whole referenced frames since START
    logic [31:0] dropped_events_reg, dropped_writes_reg, sorted_reg;

    wire [17:0] write_word = reg_write_address[19:2];
    wire write_scalar = reg_write && reg_write_address[19:10] == 10'd0;
    wire [7:0] scalar_word = reg_write_address[9:2];
    wire write_basis = reg_write && reg_write_address[19:10] == 10'd1 && 32'(reg_write_address[9:2]) <
                       FEATURES * MAX_SAMPLES;
    wire [17:0] snippet_channel_index = write_word - 18'h4000;
    wire write_snippet_channel = reg_write && reg_write_address[19:16] == 4'h1 &&
                                 32'(snippet_channel_index) < MAX_CHANNELS * ROWS;
    wire command = write_scalar && scalar_word == 8'd1;
    wire queue_staged = command && reg_write_data[0];
    wire apply_staged = command && reg_write_data[1];
    wire clear_writes = command && reg_write_data[2];
    wire end_command = command && reg_write_data[3];

    logic [ENTRY_BITS-1:0] staged_entry;
    always_comb begin
        staged_entry = {staged_gate_reg, staged_template_reg, staged_unit_reg, 768'd0};
        for (int v = 0; v < VALUES; v = v + 1)
            staged_entry[32 * v +: 32] = staged_centroid_reg[v];
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            enable_reg <= 1'b0;
            hold_reg <= 1'b0;
            snippets_reg <= 1'b0;
            n_channels_reg <= '0;
            pre_reg <= 6'd15;
            post_reg <= 6'd30;
        end else if (write_scalar) begin
            case (scalar_word)
                8'd0: begin
                    enable_reg <= reg_write_data[0];
                    hold_reg <= reg_write_data[1];
                    snippets_reg <= reg_write_data[2];
                end
                8'd3: n_channels_reg <= reg_write_data[15:0];
                8'd4: pre_reg <= reg_write_data[5:0];
                8'd5: post_reg <= reg_write_data[5:0];
                8'd64: staged_sample_reg[31:0] <= reg_write_data;
                8'd65: staged_sample_reg[63:32] <= reg_write_data;
                8'd66: staged_channel_reg <= reg_write_data[15:0];
                8'd67: staged_slot_reg <= reg_write_data[7:0];
                8'd68: staged_count_reg <= reg_write_data[7:0];
                8'd69: staged_unit_reg <= reg_write_data;
                8'd70: staged_template_reg <= reg_write_data;
                8'd71: staged_gate_reg[31:0] <= reg_write_data;
                8'd72: staged_gate_reg[63:32] <= reg_write_data;
                default: ;
            endcase
        end
    end

    always_ff @(posedge clk) begin
        if (write_scalar && scalar_word >= 8'd96 && scalar_word < 8'(96 + VALUES))
            staged_centroid_reg[5'(scalar_word - 8'd96)] <= reg_write_data;
        if (write_basis)
            basis_reg[8'(reg_write_address[9:2])] <= reg_write_data[15:0];
    end

    // ------------------------------------------------------------------------------------------------------------
    // Ring of referenced frames: LANES banks, bank f % LANES holds frame f at row (f / LANES) % (RING_FRAMES / LANES)
    // ------------------------------------------------------------------------------------------------------------
    wire ring_write = monitor_valid && enable_reg;
    wire [BANK_ROW_BITS+CHANNEL_BITS-1:0] ring_write_address = {frames_reg[3+BANK_ROW_BITS-1:3],
                                                                 monitor_channel[CHANNEL_BITS-1:0]};
    logic [BANK_ROW_BITS+CHANNEL_BITS-1:0] ring_read_address [0:LANES-1];
    logic [20:0] ring_read_data [0:LANES-1];

    for (genvar b = 0; b < LANES; b = b + 1) begin : g_ring_bank
        spikeline_sdp_ram #(
            .WIDTH(21),
            .DEPTH(RING_FRAMES / LANES * MAX_CHANNELS)
        ) bank (
            .clk(clk),
            .write_enable(ring_write && frames_reg[2:0] == 3'(b)),
            .write_address(ring_write_address),
            .write_data(monitor_sample),
            .read_address(ring_read_address[b]),
            .read_data(ring_read_data[b])
        );
    end

    // ------------------------------------------------------------------------------------------------------------
    // Event FIFO and table-write queue
    // ------------------------------------------------------------------------------------------------------------
    logic event_pop;
    logic [100:0] event_head;
    logic event_head_valid, event_full;
    logic [$clog2(EVENT_FIFO_DEPTH):0] event_count;
    wire event_push = event_valid && enable_reg;

    spikeline_sync_fifo #(
        .WIDTH(101),
        .DEPTH(EVENT_FIFO_DEPTH)
    ) event_fifo (
        .clk(clk),
        .rst(rst),
        .clear(stream_start),
        .push(event_push),
        .push_data(event_data),
        .pop(event_pop),
        .head(event_head),
        .head_valid(event_head_valid),
        .full(event_full),
        .count(event_count)
    );

    logic write_pop;
    logic [WRITE_BITS-1:0] write_head;
    logic write_head_valid, write_full;
    logic [$clog2(WRITE_QUEUE_DEPTH):0] write_count;

    spikeline_sync_fifo #(
        .WIDTH(WRITE_BITS),
        .DEPTH(WRITE_QUEUE_DEPTH)
    ) write_queue (
        .clk(clk),
        .rst(rst),
        .clear(stream_start || clear_writes),
        .push(queue_staged),
        .push_data({staged_count_reg, staged_slot_reg, staged_channel_reg, staged_sample_reg, staged_entry}),
        .pop(write_pop),
        .head(write_head),
        .head_valid(write_head_valid),
        .full(write_full),
        .count(write_count)
    );

    wire [63:0] event_sample = event_head[63:0];
    wire [15:0] event_channel = event_head[79:64];
    wire [63:0] write_sample = write_head[959:896];

    // ------------------------------------------------------------------------------------------------------------
    // Tables: snippet channels (one RAM per row), entry counts, classifier entries
    // ------------------------------------------------------------------------------------------------------------
    typedef enum logic [2:0] {
        S_IDLE,
        S_CHANNELS,
        S_SNIPPET,
        S_DRAIN,
        S_CLASSIFY,
        S_EMIT
    } state_t;
    state_t state_reg;

    logic [15:0] snippet_channel_read_data [0:ROWS-1];
    for (genvar k = 0; k < ROWS; k = k + 1) begin : g_snippet_channels
        spikeline_sdp_ram #(
            .WIDTH(16),
            .DEPTH(MAX_CHANNELS)
        ) snippet_channel_ram (
            .clk(clk),
            .write_enable(write_snippet_channel && snippet_channel_index[2:0] == 3'(k)),
            .write_address(snippet_channel_index[CHANNEL_BITS+2:3]),
            .write_data(reg_write_data[15:0]),
            .read_address(event_channel[CHANNEL_BITS-1:0]),
            .read_data(snippet_channel_read_data[k])
        );
    end

    // a table write: queued (its sample is due) or staged (COMMAND bit 1)
    logic table_write;
    logic [WRITE_BITS-1:0] table_write_data;
    wire [15:0] table_write_channel = table_write_data[975:960];
    wire [7:0] table_write_slot = table_write_data[983:976];
    wire [7:0] table_write_count = table_write_data[991:984];

    logic [3:0] entry_count_read_data;
    spikeline_sdp_ram #(
        .WIDTH(4),
        .DEPTH(MAX_CHANNELS)
    ) entry_count_ram (
        .clk(clk),
        .write_enable(table_write),
        .write_address(table_write_channel[CHANNEL_BITS-1:0]),
        .write_data(table_write_count[3:0]),
        .read_address(event_channel[CHANNEL_BITS-1:0]),
        .read_data(entry_count_read_data)
    );

    logic [CHANNEL_BITS+2:0] entry_read_address;
    logic [ENTRY_BITS-1:0] entry_read_data;
    spikeline_sdp_ram #(
        .WIDTH(ENTRY_BITS),
        .DEPTH(MAX_CHANNELS * MAX_ENTRIES)
    ) entry_ram (
        .clk(clk),
        .write_enable(table_write && !table_write_slot[7]),
        .write_address({table_write_channel[CHANNEL_BITS-1:0], table_write_slot[2:0]}),
        .write_data(table_write_data[ENTRY_BITS-1:0]),
        .read_address(entry_read_address),
        .read_data(entry_read_data)
    );

    // ------------------------------------------------------------------------------------------------------------
    // Output FIFOs (issue waits for room, so nothing in flight is ever lost)
    // ------------------------------------------------------------------------------------------------------------
    logic spike_push, spike_empty, spike_full;
    logic [959:0] spike_data;
    logic [$clog2(SPIKE_FIFO_DEPTH):0] spike_count;

    spikeline_fifo #(
        .WIDTH(960),
        .DEPTH(SPIKE_FIFO_DEPTH)
    ) spike_fifo (
        .clk(clk),
        .rst(rst),
        .clear(stream_start),
        .push(spike_push),
        .push_data(spike_data),
        .pop(m_axis_spike_tready),
        .head(m_axis_spike_tdata),
        .empty(spike_empty),
        .full(spike_full),
        .count(spike_count)
    );
    assign m_axis_spike_tvalid = !spike_empty;

    logic snippet_push, snippet_empty;
    logic [256:0] snippet_push_data, snippet_head;
    logic [$clog2(SNIPPET_FIFO_DEPTH):0] snippet_count;

    spikeline_fifo #(
        .WIDTH(257),
        .DEPTH(SNIPPET_FIFO_DEPTH)
    ) snippet_fifo (
        .clk(clk),
        .rst(rst),
        .clear(stream_start),
        .push(snippet_push),
        .push_data(snippet_push_data),
        .pop(m_axis_snippet_tready),
        .head(snippet_head),
        .empty(snippet_empty),
        .full(),
        .count(snippet_count)
    );
    assign m_axis_snippet_tvalid = !snippet_empty;
    assign m_axis_snippet_tdata = snippet_head[255:0];
    assign m_axis_snippet_tlast = snippet_head[256];

    // ------------------------------------------------------------------------------------------------------------
    // The spike being sorted
    // ------------------------------------------------------------------------------------------------------------
    logic [100:0] spike_event_reg;
    logic signed [15:0] row_channel_reg [0:ROWS-1];
    logic [3:0] entry_count_reg;
    logic [2:0] row_reg;
    logic [2:0] group_reg;
    logic [3:0] entry_issue_reg;
    logic signed [31:0] feature_reg [0:VALUES-1];
    logic signed [63:0] best_reg;
    logic signed [31:0] unit_reg, template_reg;

    wire [6:0] width = 7'(pre_reg) + 7'd1 + 7'(post_reg);
    wire [3:0] groups = 4'((width + 7'd7) >> 3);
    wire last_group = 4'(group_reg) == groups - 4'd1;
    wire last_row = row_reg == 3'(ROWS - 1);

    wire event_ready = event_head_valid && (end_reg || event_sample + 64'(post_reg) < frames_reg);
    wire write_due = write_head_valid && ((event_ready && write_sample <= event_sample) ||
                                          (frames_reg >= 64'(RING_FRAMES) &&
                                           write_sample <= frames_reg - 64'(RING_FRAMES)));
    assign table_write = (state_reg == S_IDLE && !hold_reg && write_due) || apply_staged;
    assign table_write_data = apply_staged ? {staged_count_reg, staged_slot_reg, staged_channel_reg, staged_sample_reg,
                                              staged_entry}
                                           : write_head;
    assign write_pop = state_reg == S_IDLE && !hold_reg && write_due && !apply_staged;
    assign event_pop = state_reg == S_IDLE && !hold_reg && !write_due && event_ready && !spike_full &&
                       !apply_staged;

    // SNIPPET issue: the first frame of this read, and per bank the frame it holds among the LANES read
    // frame of lane i: sample - pre + 8 group + i, before frame 0 when sample + 8 group + i < pre (64-bit arithmetic
    // throughout: frame numbers modulo 2^64, the comparison decides the sign)
    wire [63:0] spike_sample = spike_event_reg[63:0];
    wire [63:0] read_position = spike_sample + 64'({group_reg, 3'b000});
    wire [63:0] first_frame = read_position - 64'(pre_reg);
    wire [2:0] rotation = first_frame[2:0];
    wire signed [15:0] issue_channel = row_channel_reg[row_reg];
    wire snippet_room = !snippets_reg || 32'(snippet_count) + 32'd3 <= SNIPPET_FIFO_DEPTH;
    wire snippet_issue = state_reg == S_SNIPPET && snippet_room;
    logic [LANES-1:0] lane_live;

    logic [15:0] bank_frame [0:LANES-1];
    always_comb begin
        for (int b = 0; b < LANES; b = b + 1) begin
            bank_frame[b] = first_frame[15:0] + 16'(3'(3'(b) - rotation));
            ring_read_address[b] = {bank_frame[b][3+BANK_ROW_BITS-1:3], issue_channel[CHANNEL_BITS-1:0]};
        end
        for (int i = 0; i < LANES; i = i + 1)
            lane_live[i] = issue_channel >= 0 && read_position + 64'(i) >= 64'(pre_reg) &&
                           7'({group_reg, 3'b000}) + 7'(i) < width &&
                           (!end_reg || first_frame + 64'(i) < frames_reg);
    end

    // r1: RAM data; r2: lanes in order; r3: products; r4: sums per feature, accumulated per row
    logic r1_valid_reg, r1_row_last_reg, r1_snippet_last_reg;
    logic [2:0] r1_rotation_reg, r1_row_reg, r1_group_reg;
    logic [LANES-1:0] r1_live_reg;
    logic r2_valid_reg, r2_row_last_reg;
    logic [2:0] r2_row_reg, r2_group_reg;
    logic signed [20:0] r2_lane_reg [0:LANES-1];
    logic r3_valid_reg, r3_row_last_reg;
    logic [2:0] r3_row_reg;
    logic signed [36:0] r3_product_reg [0:FEATURES*LANES-1];
    logic r4_valid_reg, r4_row_last_reg, r4_row_first_reg;
    logic r3_row_first_reg;
    logic [2:0] r4_row_reg;
    logic signed [39:0] r4_sum_reg [0:FEATURES-1];
    logic signed [63:0] accumulator_reg [0:FEATURES-1];
    logic r2_row_first_reg, r1_row_first_reg;

    logic signed [20:0] lane_sample [0:LANES-1];
    always_comb begin
        for (int i = 0; i < LANES; i = i + 1)
            lane_sample[i] = r1_live_reg[i] ? $signed(ring_read_data[3'(r1_rotation_reg + 3'(i))]) : 21'sd0;
    end

    assign snippet_push = r1_valid_reg && snippets_reg;
    always_comb begin
        snippet_push_data = {r1_snippet_last_reg, 256'd0};
        for (int i = 0; i < LANES; i = i + 1)
            snippet_push_data[32 * i +: 32] = 32'(lane_sample[i]);
    end

    logic signed [39:0] lane_sum [0:FEATURES-1];
    always_comb begin
        for (int p = 0; p < FEATURES; p = p + 1) begin
            lane_sum[p] = 40'sd0;
            for (int i = 0; i < LANES; i = i + 1)
                lane_sum[p] = lane_sum[p] + 40'(r3_product_reg[p * LANES + i]);
        end
    end

    // the row's total and its feature: round(sum / 2^14), kept to 32 bits as L1's cast
    logic signed [63:0] row_total [0:FEATURES-1];
    logic signed [63:0] row_rounded [0:FEATURES-1];
    always_comb begin
        for (int p = 0; p < FEATURES; p = p + 1) begin
            row_total[p] = (r4_row_first_reg ? 64'sd0 : accumulator_reg[p]) + 64'(r4_sum_reg[p]);
            row_rounded[p] = (row_total[p] + 64'sd8192) >>> BASIS_FRAC_BITS;
        end
    end

    // ------------------------------------------------------------------------------------------------------------
    // Classification pipeline: c1 entry read, c2 differences, c3 squares, c4 distance
    // ------------------------------------------------------------------------------------------------------------
    logic c1_valid_reg, c1_last_reg;
    logic c2_valid_reg, c2_last_reg;
    logic c3_valid_reg, c3_last_reg;
    logic c4_valid_reg, c4_last_reg;
    logic signed [32:0] c2_difference_reg [0:VALUES-1];
    logic signed [63:0] c2_gate_reg, c3_gate_reg, c4_gate_reg;
    logic signed [31:0] c2_unit_reg, c3_unit_reg, c4_unit_reg, c2_template_reg, c3_template_reg, c4_template_reg;
    logic [63:0] c3_square_reg [0:VALUES-1];
    logic signed [63:0] c4_distance_reg;
    wire classify_issue = state_reg == S_CLASSIFY && entry_issue_reg < entry_count_reg;

    assign entry_read_address = {spike_event_reg[64+CHANNEL_BITS-1:64], entry_issue_reg[2:0]};

    logic [63:0] distance_sum;
    always_comb begin
        distance_sum = 64'd0;
        for (int v = 0; v < VALUES; v = v + 1)
            distance_sum = distance_sum + c3_square_reg[v];
    end
    wire accept_entry = c4_valid_reg && c4_distance_reg <= c4_gate_reg &&
                        (template_reg < 0 || c4_distance_reg < best_reg);

    assign spike_push = state_reg == S_EMIT;
    always_comb begin
        spike_data = {768'd0, template_reg, unit_reg, 32'($signed(spike_event_reg[100:80])),
                      32'(spike_event_reg[79:64]), spike_event_reg[63:0]};
        for (int v = 0; v < VALUES; v = v + 1)
            spike_data[192 + 32 * v +: 32] = feature_reg[v];
    end

    wire pipeline_empty = !r1_valid_reg && !r2_valid_reg && !r3_valid_reg && !r4_valid_reg;
    wire done = end_reg && state_reg == S_IDLE && event_count == 0 && spike_empty && snippet_empty;
    // every spike the referenced frames allow has been sorted and sent (the RTL kernel's run end)
    wire caught_up = state_reg == S_IDLE && !(event_ready && !hold_reg) && spike_empty && snippet_empty;

    always_ff @(posedge clk) begin
        if (rst || stream_start) begin
            state_reg <= S_IDLE;
            end_reg <= 1'b0;
            frames_reg <= '0;
            dropped_events_reg <= '0;
            dropped_writes_reg <= '0;
            sorted_reg <= '0;
            r1_valid_reg <= 1'b0;
            r2_valid_reg <= 1'b0;
            r3_valid_reg <= 1'b0;
            r4_valid_reg <= 1'b0;
            c1_valid_reg <= 1'b0;
            c2_valid_reg <= 1'b0;
            c3_valid_reg <= 1'b0;
            c4_valid_reg <= 1'b0;
        end else begin
            if (end_command)
                end_reg <= 1'b1;
            if (monitor_valid && monitor_channel == n_channels_reg - 16'd1)
                frames_reg <= frames_reg + 64'd1;
            if (event_push && event_full)
                dropped_events_reg <= dropped_events_reg + 1'b1;
            if (queue_staged && write_full)
                dropped_writes_reg <= dropped_writes_reg + 1'b1;
            if (spike_push)
                sorted_reg <= sorted_reg + 1'b1;

            // snippet pipeline
            r1_valid_reg <= snippet_issue;
            r1_rotation_reg <= rotation;
            r1_row_reg <= row_reg;
            r1_group_reg <= group_reg;
            r1_live_reg <= lane_live;
            r1_row_first_reg <= group_reg == 3'd0;
            r1_row_last_reg <= last_group;
            r1_snippet_last_reg <= last_group && last_row;
            r2_valid_reg <= r1_valid_reg;
            r2_row_reg <= r1_row_reg;
            r2_group_reg <= r1_group_reg;
            r2_row_first_reg <= r1_row_first_reg;
            r2_row_last_reg <= r1_row_last_reg;
            for (int i = 0; i < LANES; i = i + 1)
                r2_lane_reg[i] <= lane_sample[i];
            r3_valid_reg <= r2_valid_reg;
            r3_row_reg <= r2_row_reg;
            r3_row_first_reg <= r2_row_first_reg;
            r3_row_last_reg <= r2_row_last_reg;
            // data registers load only when their stage is valid (also saves the simulator the arithmetic)
            if (r2_valid_reg)
                for (int p = 0; p < FEATURES; p = p + 1)
                    for (int i = 0; i < LANES; i = i + 1)
                        r3_product_reg[p * LANES + i] <=
                            37'(basis_reg[p * MAX_SAMPLES + 32'({r2_group_reg, 3'(i)})]) * 37'(r2_lane_reg[i]);
            r4_valid_reg <= r3_valid_reg;
            r4_row_reg <= r3_row_reg;
            r4_row_first_reg <= r3_row_first_reg;
            r4_row_last_reg <= r3_row_last_reg;
            for (int p = 0; p < FEATURES; p = p + 1)
                r4_sum_reg[p] <= lane_sum[p];
            if (r4_valid_reg) begin
                for (int p = 0; p < FEATURES; p = p + 1)
                    accumulator_reg[p] <= row_total[p];
                if (r4_row_last_reg)
                    for (int p = 0; p < FEATURES; p = p + 1)
                        feature_reg[p * ROWS + 32'(r4_row_reg)] <= row_rounded[p][31:0];
            end

            // classification pipeline
            c1_valid_reg <= classify_issue;
            c1_last_reg <= classify_issue && entry_issue_reg + 4'd1 == entry_count_reg;
            c2_valid_reg <= c1_valid_reg;
            c2_last_reg <= c1_last_reg;
            if (c1_valid_reg)
                for (int v = 0; v < VALUES; v = v + 1)
                    c2_difference_reg[v] <= 33'(feature_reg[v]) - 33'($signed(entry_read_data[32 * v +: 32]));
            c2_unit_reg <= entry_read_data[799:768];
            c2_template_reg <= entry_read_data[831:800];
            c2_gate_reg <= entry_read_data[895:832];
            c3_valid_reg <= c2_valid_reg;
            c3_last_reg <= c2_last_reg;
            // L1 keeps the square in 64 bits: the low 64 bits of the 33 x 33 product
            if (c2_valid_reg)
                for (int v = 0; v < VALUES; v = v + 1)
                    c3_square_reg[v] <= 64'(c2_difference_reg[v]) * 64'(c2_difference_reg[v]);
            c3_unit_reg <= c2_unit_reg;
            c3_template_reg <= c2_template_reg;
            c3_gate_reg <= c2_gate_reg;
            c4_valid_reg <= c3_valid_reg;
            c4_last_reg <= c3_last_reg;
            c4_distance_reg <= $signed(distance_sum);
            c4_unit_reg <= c3_unit_reg;
            c4_template_reg <= c3_template_reg;
            c4_gate_reg <= c3_gate_reg;

            case (state_reg)
                S_IDLE: begin
                    if (event_pop) begin
                        spike_event_reg <= event_head;
                        state_reg <= S_CHANNELS;
                    end
                end
                S_CHANNELS: begin
                    for (int k = 0; k < ROWS; k = k + 1)
                        row_channel_reg[k] <= $signed(snippet_channel_read_data[k]);
                    entry_count_reg <= entry_count_read_data;
                    row_reg <= '0;
                    group_reg <= '0;
                    state_reg <= S_SNIPPET;
                end
                S_SNIPPET: begin
                    if (snippet_issue) begin
                        if (last_group) begin
                            group_reg <= '0;
                            row_reg <= row_reg + 1'b1;
                            if (last_row)
                                state_reg <= S_DRAIN;
                        end else begin
                            group_reg <= group_reg + 1'b1;
                        end
                    end
                end
                S_DRAIN: begin
                    if (pipeline_empty) begin
                        state_reg <= S_CLASSIFY;
                        entry_issue_reg <= '0;
                        unit_reg <= -32'sd1;
                        template_reg <= -32'sd1;
                        best_reg <= '0;
                    end
                end
                S_CLASSIFY: begin
                    if (classify_issue)
                        entry_issue_reg <= entry_issue_reg + 1'b1;
                    if (accept_entry) begin
                        best_reg <= c4_distance_reg;
                        unit_reg <= c4_unit_reg;
                        template_reg <= c4_template_reg;
                    end
                    if (entry_count_reg == 4'd0 || (c4_valid_reg && c4_last_reg))
                        state_reg <= S_EMIT;
                end
                S_EMIT: state_reg <= S_IDLE;
                default: state_reg <= S_IDLE;
            endcase
        end
    end

    // ------------------------------------------------------------------------------------------------------------
    // Register reads
    // ------------------------------------------------------------------------------------------------------------
    always_comb begin
        reg_read_data = 32'd0;
        if (reg_read_address[19:10] == 10'd0) begin
            case (reg_read_address[9:2])
                8'd0: reg_read_data = {29'd0, snippets_reg, hold_reg, enable_reg};
                8'd2: reg_read_data = {29'd0, caught_up, done, state_reg == S_IDLE};
                8'd3: reg_read_data = 32'(n_channels_reg);
                8'd4: reg_read_data = 32'(pre_reg);
                8'd5: reg_read_data = 32'(post_reg);
                8'd6: reg_read_data = frames_reg[31:0];
                8'd7: reg_read_data = frames_reg[63:32];
                8'd8: reg_read_data = dropped_events_reg;
                8'd9: reg_read_data = dropped_writes_reg;
                8'd10: reg_read_data = 32'(write_count);
                8'd11: reg_read_data = sorted_reg;
                8'd12: reg_read_data = MAX_CHANNELS;
                default: reg_read_data = 32'd0;
            endcase
        end
    end
endmodule

`default_nettype wire
