// The detection front end of L1 (hls/include/spikeline/hw/detector.hpp) as a streaming core, bit-exact with it.
//
//   s_axis (int16 samples, channel-serial, tlast on a frame's last channel)
//     -> stage 1: two biquads per sample (state in block RAM), Q4 rounding, group sums per frame (plain, and clipped
//        to each channel's clip level, and whether more than about three quarters of the channels are beyond it)
//     -> frame buffer of FRAME_SLOTS frames (the reference needs the whole frame's sums before subtracting)
//     -> stage 2: common reference, noise tracker, threshold, alignment, dead time (state in block RAM); at the first
//        frame of each reference period, the clip levels of the next period from the noise estimates
//     -> candidate FIFO -> artefact rejection and de-duplication FSM (spikeline_dedup) -> event FIFO -> m_axis (one
//        event or artefact per transfer)
//   s_axil: the parameters of hw::DetectParams, control and status (register table in hw_sim/README.md)
//
// Both stages issue one channel per clock and never stall once issued: back-pressure acts at issue (stage 1 waits
// for a free frame slot, stage 2 for room in the candidate FIFO), so a full m_axis eventually lowers
// s_axis_tready. Every multiplier has its product registered (stage 1: p1 high-pass products, p2 sum, p3 low-pass
// products, p4 sum; stage 2: q1 reference product, q2 subtraction and threshold and clip products, q3 detector).
// Per-channel state is read when a channel issues and written back four (stage 1) or three (stage 2) clocks later;
// with fewer than MIN_PIPELINED_CHANNELS channels a frame waits for the previous one to leave the pipeline instead.
`default_nettype none

module spikeline_detect_core #(
    parameter int MAX_CHANNELS = 1024,
    parameter int MAX_GROUPS = 64,
    parameter int PENDING_DEPTH = 512,
    parameter int MAX_FRAME_CANDIDATES = 64,
    parameter int MAX_FRAME_DECISIONS = 4,
    parameter int MAX_DECISION_DELAY = 16,
    parameter int MAX_ARTIFACT_WINDOW = 16,
    parameter int FRAME_SLOTS = 4,
    parameter int CANDIDATE_FIFO_DEPTH = 64,
    parameter int EVENT_FIFO_DEPTH = 32
) (
    input  wire logic         clk,
    input  wire logic         rst,

    input  wire logic [15:0]  s_axis_tdata,
    input  wire logic         s_axis_tvalid,
    output logic              s_axis_tready,
    input  wire logic         s_axis_tlast,

    output logic [127:0]      m_axis_tdata,   // {amplitude (sign-extended), 15'b0, artefact, channel, sample index}
    output logic              m_axis_tvalid,
    input  wire logic         m_axis_tready,
    output logic              m_axis_tlast,

    input  wire logic [19:0]  s_axil_awaddr,
    input  wire logic         s_axil_awvalid,
    output logic              s_axil_awready,
    input  wire logic [31:0]  s_axil_wdata,
    input  wire logic [3:0]   s_axil_wstrb,
    input  wire logic         s_axil_wvalid,
    output logic              s_axil_wready,
    output logic [1:0]        s_axil_bresp,
    output logic              s_axil_bvalid,
    input  wire logic         s_axil_bready,
    input  wire logic [19:0]  s_axil_araddr,
    input  wire logic         s_axil_arvalid,
    output logic              s_axil_arready,
    output logic [31:0]       s_axil_rdata,
    output logic [1:0]        s_axil_rresp,
    output logic              s_axil_rvalid,
    input  wire logic         s_axil_rready,

    // Observation only (no back-pressure): every referenced sample, for co-simulation against L1.
    output logic              monitor_valid,
    output logic [15:0]       monitor_channel,
    output logic [20:0]       monitor_sample
);
    localparam int CHANNEL_BITS = $clog2(MAX_CHANNELS);
    localparam int GROUP_BITS = $clog2(MAX_GROUPS);
    localparam int SLOT_BITS = $clog2(FRAME_SLOTS);
    localparam int MAX_NEIGHBOURS = 16;
    localparam int MAX_PARTNERS = 4;
    localparam int NEIGHBOUR_ADDRESS_BITS = $clog2(MAX_CHANNELS * MAX_NEIGHBOURS);
    localparam int MIN_PIPELINED_CHANNELS = 8;
    localparam int CANDIDATE_COUNT_BITS = $clog2(CANDIDATE_FIFO_DEPTH) + 1;
    localparam logic [SLOT_BITS:0] SLOTS_FULL = (SLOT_BITS + 1)'(FRAME_SLOTS);
    localparam int BANDPASS_STATE_BITS = 6 * 26;
    localparam int DETECTOR_STATE_BITS = 97;
    localparam logic signed [31:0] SAMPLE_MAX = 32'sd1048575;  // 2^20 - 1
    localparam logic signed [31:0] SAMPLE_MIN = -32'sd1048576;
    localparam logic [25:0] NOISE_MAX = 26'd8388607;           // 2^23 - 1
    // common reference (L1 common_reference.hpp): clip levels change every 2^12 frames (DetectConfig::reference_period)
    localparam int REFERENCE_PERIOD_BITS = 12;
    // A clip level is < 2^27, but a 21-bit sample lies in [-2^20, 2^20 - 1]: a level saturated to anything >= 2^20 + 1
    // clamps nothing and counts nothing beyond it, exactly as the full level, so 21 bits are kept.
    localparam int CLIP_BITS = 21;
    // a group takes its plain sum when beyond * group_inverse_size > 3 * 2^14 (L1 group_mean)
    localparam logic signed [17:0] PLAIN_LIMIT = 18'sd49152;

    // ------------------------------------------------------------------------------------------------------------
    // Parameters (AXI-Lite)
    // ------------------------------------------------------------------------------------------------------------
    logic [15:0] n_channels_reg;
    logic signed [15:0] hp_gain_reg, hp_a1_reg, hp_a2_reg, lp_gain_reg, lp_a1_reg, lp_a2_reg;
    logic [22:0] noise_step_fast_reg, noise_step_slow_reg, noise_initial_reg;
    logic [31:0] warmup_frames_reg;
    logic [15:0] threshold_gain_reg;
    logic [1:0] polarity_reg;
    logic [6:0] align_window_reg, dedup_window_reg;
    logic [15:0] dead_time_reg;
    logic [7:0] shadow_window_reg;
    logic [8:0] shadow_ratio_reg;
    logic [16:0] group_inverse_reg [0:MAX_GROUPS-1];
    logic [4:0] artifact_window_reg;
    logic [15:0] artifact_blank_reg;
    logic [15:0] spatial_gate_gain_reg;
    logic [15:0] reference_clip_gain_reg;
    logic [15:0] spatial_gain_reg [0:MAX_PARTNERS-1];

    // ------------------------------------------------------------------------------------------------------------
    // Control
    // ------------------------------------------------------------------------------------------------------------
    logic stream_active_reg;          // START done, samples accepted
    logic clearing_reg;               // START: writing the initial state of every channel
    logic [CHANNEL_BITS:0] clear_channel_reg;
    logic flush_requested_reg;        // FLUSH written: end the stream once every frame is through
    logic flush_sweep_reg;            // stage 2 is emitting the candidates of channels still searching
    logic flush_issued_reg;
    logic framing_error_reg;          // tlast disagreed with N_CHANNELS
    logic [31:0] events_out_reg;

    // ------------------------------------------------------------------------------------------------------------
    // Stage 1: band-pass
    // ------------------------------------------------------------------------------------------------------------
    logic [15:0] in_channel_reg;      // channel of the next input sample
    logic [SLOT_BITS-1:0] in_slot_reg;
    // frames stage 1 has taken in, modulo two reference periods: the top bit is the clip bank of the frame coming in.
    // Stage 2 runs at most FRAME_SLOTS frames behind, so it writes the other bank (L1 take_reference_clips).
    logic [REFERENCE_PERIOD_BITS:0] in_frame_reg;
    logic [SLOT_BITS:0] slots_used_reg;   // frames being filtered, waiting, or being referenced
    logic [SLOT_BITS:0] frames_ready_reg; // filtered frames stage 2 has not started

    logic p1_valid_reg, p1_last_reg, p1_bank_reg;
    logic [CHANNEL_BITS-1:0] p1_channel_reg;
    logic [SLOT_BITS-1:0] p1_slot_reg;
    logic signed [15:0] p1_sample_reg;

    logic p2_valid_reg, p2_last_reg, p2_bank_reg;
    logic [CHANNEL_BITS-1:0] p2_channel_reg;
    logic [SLOT_BITS-1:0] p2_slot_reg;
    logic signed [7:0] p2_group_reg;
    logic signed [25:0] p2_input_reg, p2_input1_reg, p2_middle1_reg, p2_middle2_reg, p2_output1_reg, p2_output2_reg;

    logic p3_valid_reg, p3_last_reg, p3_bank_reg;
    logic [CHANNEL_BITS-1:0] p3_channel_reg;
    logic [SLOT_BITS-1:0] p3_slot_reg;
    logic signed [7:0] p3_group_reg;
    logic signed [25:0] p3_input_reg, p3_input1_reg, p3_middle_reg, p3_middle1_reg, p3_middle2_reg;
    logic signed [25:0] p3_output1_reg, p3_output2_reg;

    logic p4_valid_reg, p4_last_reg, p4_bank_reg;
    logic [CHANNEL_BITS-1:0] p4_channel_reg;
    logic [SLOT_BITS-1:0] p4_slot_reg;
    logic signed [7:0] p4_group_reg;
    logic signed [25:0] p4_input_reg, p4_input1_reg, p4_middle_reg, p4_middle1_reg, p4_output1_reg;

    logic p5_valid_reg, p5_last_reg, p5_bank_reg;
    logic [CHANNEL_BITS-1:0] p5_channel_reg;
    logic [SLOT_BITS-1:0] p5_slot_reg;
    logic signed [7:0] p5_group_reg;
    logic signed [20:0] p5_filtered_reg;

    // per slot and group (L1 GroupSums): the plain sum, the clipped sum, and a margin that replaces the count of
    // channels beyond their clip: PLAIN_LIMIT - beyond * group_inverse_size, left alone once negative. Its sign is
    // L1's choice of the plain sum (beyond * inverse > PLAIN_LIMIT), so q1 needs no multiplier before the mean's;
    // 18 bits (margin > PLAIN_LIMIT - 2^17), not the 27 of the product.
    logic signed [31:0] group_plain_reg [0:FRAME_SLOTS*MAX_GROUPS-1];
    logic signed [31:0] group_clipped_reg [0:FRAME_SLOTS*MAX_GROUPS-1];
    logic signed [17:0] group_margin_reg [0:FRAME_SLOTS*MAX_GROUPS-1];

    wire frame_start = in_channel_reg == 16'd0;
    wire last_input_channel = in_channel_reg == n_channels_reg - 16'd1;
    wire stage1_empty = !p1_valid_reg && !p2_valid_reg && !p3_valid_reg && !p4_valid_reg && !p5_valid_reg;
    assign s_axis_tready = stream_active_reg && !flush_requested_reg &&
                           (!frame_start || (slots_used_reg != SLOTS_FULL &&
                                             (n_channels_reg >= 16'(MIN_PIPELINED_CHANNELS) || stage1_empty)));
    wire accept = s_axis_tvalid && s_axis_tready;

    // per-channel filter history: {input1, input2, middle1, middle2, output1, output2}, Q8, 26 bits each
    logic bandpass_write_enable;
    logic [CHANNEL_BITS-1:0] bandpass_write_address;
    logic [BANDPASS_STATE_BITS-1:0] bandpass_write_data, bandpass_read_data;

    spikeline_sdp_ram #(
        .WIDTH(BANDPASS_STATE_BITS),
        .DEPTH(MAX_CHANNELS)
    ) bandpass_state_ram (
        .clk(clk),
        .write_enable(bandpass_write_enable),
        .write_address(bandpass_write_address),
        .write_data(bandpass_write_data),
        .read_address(in_channel_reg[CHANNEL_BITS-1:0]),
        .read_data(bandpass_read_data)
    );

    logic group_write_enable;
    logic [CHANNEL_BITS-1:0] group_write_address;
    logic [7:0] group_write_data, group_read_data;

    spikeline_sdp_ram #(
        .WIDTH(8),
        .DEPTH(MAX_CHANNELS)
    ) group_of_ram (
        .clk(clk),
        .write_enable(group_write_enable),
        .write_address(group_write_address),
        .write_data(group_write_data),
        .read_address(in_channel_reg[CHANNEL_BITS-1:0]),
        .read_data(group_read_data)
    );

    wire signed [25:0] history_input1 = bandpass_read_data[155:130];
    wire signed [25:0] history_input2 = bandpass_read_data[129:104];
    wire signed [25:0] history_middle1 = bandpass_read_data[103:78];
    wire signed [25:0] history_middle2 = bandpass_read_data[77:52];
    wire signed [25:0] history_output1 = bandpass_read_data[51:26];
    wire signed [25:0] history_output2 = bandpass_read_data[25:0];
    wire signed [25:0] p1_input = 26'(p1_sample_reg) <<< 8;
    logic signed [25:0] high_passed, band_passed;

    spikeline_biquad #(.MIDDLE(-2)) high_pass (
        .clk(clk), .x0(p1_input), .x1(history_input1), .x2(history_input2), .y1(history_middle1), .y2(history_middle2),
        .gain(hp_gain_reg), .a1(hp_a1_reg), .a2(hp_a2_reg), .y0(high_passed)
    );

    spikeline_biquad #(.MIDDLE(2)) low_pass (
        .clk(clk), .x0(p3_middle_reg), .x1(p3_middle1_reg), .x2(p3_middle2_reg), .y1(p3_output1_reg),
        .y2(p3_output2_reg),
        .gain(lp_gain_reg), .a1(lp_a1_reg), .a2(lp_a2_reg), .y0(band_passed)
    );

    // Q8 -> Q4, round half up, saturated to 21 bits
    wire signed [26:0] band_passed_q4 = (27'(band_passed) + 27'sd8) >>> 4;
    wire signed [20:0] filtered_q4 = band_passed_q4 > 27'(SAMPLE_MAX) ? SAMPLE_MAX[20:0]
                                   : (band_passed_q4 < 27'(SAMPLE_MIN) ? SAMPLE_MIN[20:0] : band_passed_q4[20:0]);

    always_comb begin
        bandpass_write_enable = clearing_reg || p4_valid_reg;
        bandpass_write_address = clearing_reg ? clear_channel_reg[CHANNEL_BITS-1:0] : p4_channel_reg;
        bandpass_write_data = clearing_reg ? '0 : {p4_input_reg, p4_input1_reg, p4_middle_reg, p4_middle1_reg,
                                                   band_passed, p4_output1_reg};
    end

    // frame buffer: {group, filtered sample} per slot and channel
    logic [SLOT_BITS-1:0] s2_slot_reg;
    logic [15:0] s2_channel_reg;
    logic [28:0] frame_read_data;

    spikeline_sdp_ram #(
        .WIDTH(29),
        .DEPTH(FRAME_SLOTS * MAX_CHANNELS)
    ) frame_buffer_ram (
        .clk(clk),
        .write_enable(p5_valid_reg),
        .write_address({p5_slot_reg, p5_channel_reg}),
        .write_data({p5_group_reg, p5_filtered_reg}),
        .read_address({s2_slot_reg, s2_channel_reg[CHANNEL_BITS-1:0]}),
        .read_data(frame_read_data)
    );

    // ------------------------------------------------------------------------------------------------------------
    // Stage 2: reference, noise tracker, threshold, alignment, dead time
    // ------------------------------------------------------------------------------------------------------------
    logic [63:0] s2_frame_reg;       // frame stage 2 issues (= frames processed once it is done)

    // the spatial rule's partners and their samples (below the AXI4-Lite decoding)
    logic signed [15:0] partner_read_data [0:MAX_PARTNERS-1];
    logic [28:0] partner_frame_data [0:MAX_PARTNERS-1];
    logic q1_valid_reg, q1_last_reg, q1_flush_reg;
    logic [CHANNEL_BITS-1:0] q1_channel_reg;
    logic [SLOT_BITS-1:0] q1_slot_reg;
    logic [63:0] q1_frame_reg;

    logic q2_valid_reg, q2_last_reg, q2_flush_reg;
    logic [CHANNEL_BITS-1:0] q2_channel_reg;
    logic [63:0] q2_frame_reg;
    logic signed [63:0] q2_scaled_sum_reg;
    logic signed [20:0] q2_filtered_reg;
    logic q2_unreferenced_reg;
    logic signed [7:0] q2_group_reg;
    logic [DETECTOR_STATE_BITS-1:0] q2_state_reg;
    logic [MAX_PARTNERS-1:0] q2_partner_valid_reg;

    logic q3_valid_reg, q3_last_reg, q3_flush_reg;
    logic [CHANNEL_BITS-1:0] q3_channel_reg;
    logic [63:0] q3_frame_reg;
    logic signed [20:0] q3_referenced_reg;
    logic [DETECTOR_STATE_BITS-1:0] q3_state_reg;
    logic signed [31:0] q3_threshold_reg;
    logic signed [7:0] q3_group_reg;
    logic signed [31:0] q3_gate_reg, q3_spatial_limit_reg;
    logic [26:0] q3_clip_reg;
    logic signed [20:0] q3_partner_reg [0:MAX_PARTNERS-1];
    logic [2:0] q3_partners_reg;     // partners in use (0..4)

    logic [CANDIDATE_COUNT_BITS-1:0] candidate_count;
    wire candidate_room = 32'(candidate_count) + 32'(q1_valid_reg) + 32'(q2_valid_reg) + 32'(q3_valid_reg) <
                          CANDIDATE_FIFO_DEPTH;
    wire stage2_empty = !q1_valid_reg && !q2_valid_reg && !q3_valid_reg;
    wire stage2_hazard_free = s2_channel_reg != 16'd0 || n_channels_reg >= 16'(MIN_PIPELINED_CHANNELS) ||
                              stage2_empty;
    wire last_stage2_channel = s2_channel_reg == n_channels_reg - 16'd1;
    wire issue_frame = stream_active_reg && !flush_sweep_reg && (s2_channel_reg != 16'd0 || frames_ready_reg != 0) &&
                       candidate_room && stage2_hazard_free;
    wire issue_flush = flush_sweep_reg && !flush_issued_reg && candidate_room && stage2_hazard_free;
    wire issue = issue_frame || issue_flush;
    wire start_flush = flush_requested_reg && !flush_sweep_reg && frame_start && stage1_empty &&
                       frames_ready_reg == 0 && slots_used_reg == 0 && s2_channel_reg == 16'd0 && stage2_empty;

    // detector state: {opposite_run[21:0], hold[15:0], best_value[20:0], best_pos[6:0], count[6:0], searching,
    // noise[22:0]}
    logic detector_write_enable;
    logic [CHANNEL_BITS-1:0] detector_write_address;
    logic [DETECTOR_STATE_BITS-1:0] detector_write_data, detector_read_data;

    spikeline_sdp_ram #(
        .WIDTH(DETECTOR_STATE_BITS),
        .DEPTH(MAX_CHANNELS)
    ) detector_state_ram (
        .clk(clk),
        .write_enable(detector_write_enable),
        .write_address(detector_write_address),
        .write_data(detector_write_data),
        .read_address(s2_channel_reg[CHANNEL_BITS-1:0]),
        .read_data(detector_read_data)
    );

    // q1: the group's sum times round(2^16 / members); q2 rounds it to the mean: round(product / 2^16). The sum is
    // the clipped one unless more than about three quarters of the members are beyond their clip (negative margin):
    // then the plain one.
    wire signed [7:0] q1_group = frame_read_data[28:21];
    wire signed [20:0] q1_filtered = frame_read_data[20:0];
    wire [GROUP_BITS-1:0] q1_group_index = q1_group[GROUP_BITS-1:0];
    wire [SLOT_BITS+GROUP_BITS-1:0] q1_sum_index = {q1_slot_reg, q1_group_index};
    wire signed [31:0] q1_sum = group_margin_reg[q1_sum_index][17] ? group_plain_reg[q1_sum_index]
                                                                    : group_clipped_reg[q1_sum_index];
    wire signed [63:0] q1_scaled_sum = 64'(q1_sum) * 64'($signed({1'b0, group_inverse_reg[q1_group_index]}));

    // q2: round the product to the mean, subtract, saturate; the threshold product from the noise estimate
    wire signed [63:0] q2_mean_wide = (q2_scaled_sum_reg + 64'sd32768) >>> 16;
    wire signed [31:0] q2_mean = q2_mean_wide[31:0];
    wire signed [32:0] q2_difference = 33'(q2_filtered_reg) - 33'(q2_mean);
    wire signed [20:0] q2_referenced = q2_unreferenced_reg ? q2_filtered_reg
                                     : (q2_difference > 33'(SAMPLE_MAX) ? SAMPLE_MAX[20:0]
                                     : (q2_difference < 33'(SAMPLE_MIN) ? SAMPLE_MIN[20:0] : q2_difference[20:0]));
    // the noise estimate rounded to Q4 (threshold_from_noise): (m + 8) >> 4, at most 2^19
    wire [23:0] q2_noise_rounded = 24'(q2_state_reg[22:0]) + 24'd8;
    wire [19:0] q2_noise_q4 = q2_noise_rounded[23:4];
    wire [34:0] q2_scaled_threshold = 35'(q2_noise_q4) * 35'(threshold_gain_reg) + 35'd128;
    // the spatial rule's gate, the partners' referenced samples (they share the channel's group, hence its mean) and
    // the limit of the sum for this channel's partner count (threshold_detector.hpp)
    logic [2:0] q2_partners;
    logic [15:0] q2_spatial_gain;
    logic signed [20:0] q2_partner_referenced [0:MAX_PARTNERS-1];
    always_comb begin
        q2_partners = 3'd0;
        for (int k = 0; k < MAX_PARTNERS; k = k + 1)
            if (q2_partner_valid_reg[k] && q2_partners == 3'(k))
                q2_partners = 3'(k + 1);
        q2_spatial_gain = q2_partners == 3'd0 ? 16'd0 : spatial_gain_reg[q2_partners[1:0] - 2'd1];
    end
    for (genvar k = 0; k < MAX_PARTNERS; k = k + 1) begin : partner_reference
        wire signed [20:0] partner_filtered = partner_frame_data[k][20:0];
        wire signed [32:0] partner_difference = 33'(partner_filtered) - 33'(q2_mean);
        assign q2_partner_referenced[k] = q2_unreferenced_reg ? partner_filtered
                                        : (partner_difference > 33'(SAMPLE_MAX) ? SAMPLE_MAX[20:0]
                                        : (partner_difference < 33'(SAMPLE_MIN) ? SAMPLE_MIN[20:0]
                                                                               : partner_difference[20:0]));
    end
    wire [34:0] q2_scaled_gate = 35'(q2_noise_q4) * 35'(spatial_gate_gain_reg) + 35'd128;
    // the clip level the noise estimate gives (threshold_from_noise with reference_clip_gain), used at q3 only at the
    // first frame of a reference period
    wire [34:0] q2_scaled_clip = 35'(q2_noise_q4) * 35'(reference_clip_gain_reg) + 35'd128;
    wire [35:0] q2_scaled_limit = 36'(q2_noise_q4) * 36'(q2_spatial_gain) + 36'd128;

    // q3: the detector (L1 track_noise_and_flag + align_channel, or flush_detector for a flush sweep)
    wire [22:0] state_noise = q3_state_reg[22:0];
    wire state_searching = q3_state_reg[23];
    wire [6:0] state_count = q3_state_reg[30:24];
    wire [6:0] state_best_pos = q3_state_reg[37:31];
    wire signed [20:0] state_best_value = q3_state_reg[58:38];
    wire [15:0] state_hold = q3_state_reg[74:59];
    wire signed [21:0] state_opposite_run = q3_state_reg[96:75];

    logic warm, released, crossing, negative_crossing, positive_crossing, more_extreme, emit;
    logic gated, supported, starts;
    logic signed [31:0] partner_sum, spatial_sum;
    logic [22:0] step, noise_next;
    logic [25:0] magnitude;
    logic [21:0] absolute_value, absolute_best;
    logic signed [31:0] threshold;
    logic [23:0] raised;
    logic searching_next;
    logic [6:0] count_next, best_pos_next;
    logic signed [20:0] best_value_next;
    logic [15:0] hold_next;
    logic signed [17:0] hold_after_peak;
    logic candidate_valid, candidate_swing;
    logic [63:0] candidate_sample;
    logic signed [20:0] candidate_amplitude;
    logic signed [21:0] against, opposite_run_next;
    logic [21:0] absolute_run, absolute_candidate;

    always_comb begin
        warm = q3_frame_reg >= 64'(warmup_frames_reg);
        step = warm ? noise_step_slow_reg : noise_step_fast_reg;
        absolute_value = q3_referenced_reg < 0 ? 22'(-q3_referenced_reg) : 22'(q3_referenced_reg);
        absolute_best = state_best_value < 0 ? 22'(-state_best_value) : 22'(state_best_value);
        magnitude = {absolute_value[21:0], 4'd0} > NOISE_MAX ? NOISE_MAX : {absolute_value[21:0], 4'd0};
        threshold = q3_threshold_reg;
        raised = 24'(state_noise) + 24'(step);
        if (26'(state_noise) < magnitude)
            noise_next = raised > 24'(NOISE_MAX) ? NOISE_MAX[22:0] : raised[22:0];
        else if (26'(state_noise) > magnitude)
            noise_next = state_noise < step ? 23'd0 : state_noise - step;
        else
            noise_next = state_noise;

        negative_crossing = 32'(q3_referenced_reg) < -threshold;
        positive_crossing = 32'(q3_referenced_reg) > threshold;
        // L1 outgrows_peak: a sample beyond 5/4 of the held peak ends the hold
        released = state_hold == 16'd0 || 25'(absolute_value) * 25'd4 > 25'(absolute_best) * 25'd5;
        crossing = warm && released &&
                   (polarity_reg == 2'd0 ? negative_crossing
                                         : (polarity_reg == 2'd1 ? positive_crossing
                                                                 : negative_crossing || positive_crossing));
        // spatial rule: a gate crossing starts a search when the sum with the partners (clamped to +-threshold) is
        // beyond the limit in the direction of the sample
        gated = warm && released && spatial_gate_gain_reg != 16'd0 && !crossing &&
                (polarity_reg == 2'd0 ? 32'(q3_referenced_reg) < -q3_gate_reg
                                      : (polarity_reg == 2'd1 ? 32'(q3_referenced_reg) > q3_gate_reg
                                                              : 32'(q3_referenced_reg) < -q3_gate_reg ||
                                                                32'(q3_referenced_reg) > q3_gate_reg));
        partner_sum = 32'sd0;
        for (int k = 0; k < MAX_PARTNERS; k = k + 1)
            if (3'(k) < q3_partners_reg)
                partner_sum = partner_sum + (32'(q3_partner_reg[k]) < -threshold ? -threshold
                                             : (32'(q3_partner_reg[k]) > threshold ? threshold
                                                                                   : 32'(q3_partner_reg[k])));
        spatial_sum = 32'($signed({1'b0, q3_partners_reg})) * 32'(q3_referenced_reg) + partner_sum;
        supported = q3_partners_reg != 3'd0 &&
                    (q3_referenced_reg < 0 ? spatial_sum < -q3_spatial_limit_reg : spatial_sum > q3_spatial_limit_reg);
        starts = crossing || (gated && supported);
        more_extreme = polarity_reg == 2'd0 ? q3_referenced_reg < state_best_value
                     : (polarity_reg == 2'd1 ? q3_referenced_reg > state_best_value : absolute_value > absolute_best);

        searching_next = state_searching;
        count_next = state_count;
        best_pos_next = state_best_pos;
        best_value_next = state_best_value;
        hold_next = state_hold != 16'd0 ? state_hold - 16'd1 : 16'd0;
        emit = 1'b0;
        if (state_searching) begin
            if (more_extreme) begin
                best_value_next = q3_referenced_reg;
                best_pos_next = state_count;
            end
            count_next = state_count + 7'd1;
            emit = count_next == align_window_reg;
        end else if (starts) begin
            searching_next = 1'b1;
            count_next = 7'd1;
            best_pos_next = 7'd0;
            best_value_next = q3_referenced_reg;
            emit = count_next == align_window_reg;
        end
        // L1 next_opposite_run (not while searching; none for both polarities)
        against = polarity_reg == 2'd1 ? 22'sd0 - 22'(q3_referenced_reg) : 22'(q3_referenced_reg);
        if (polarity_reg == 2'd2 || state_searching)
            opposite_run_next = state_opposite_run;
        else if (against > 0)
            opposite_run_next = state_opposite_run > against ? state_opposite_run : against;
        else
            opposite_run_next = state_opposite_run > 0 ? -state_opposite_run : state_opposite_run;
        hold_after_peak = 18'(dead_time_reg) - 18'(align_window_reg) + 18'(best_pos_next);
        if (emit) begin
            searching_next = 1'b0;
            hold_next = hold_after_peak > 0 ? hold_after_peak[15:0] : 16'd0;
        end
        candidate_valid = emit;
        candidate_sample = q3_frame_reg - 64'(align_window_reg) + 64'd1 + 64'(best_pos_next);
        candidate_amplitude = best_value_next;

        if (q3_flush_reg) begin
            // end of stream: a channel still searching emits its extremum (window cut short)
            noise_next = state_noise;
            searching_next = 1'b0;
            count_next = state_count;
            best_pos_next = state_best_pos;
            best_value_next = state_best_value;
            hold_next = state_hold;
            opposite_run_next = state_opposite_run;
            candidate_valid = state_searching;
            candidate_sample = q3_frame_reg - 64'(state_count) + 64'(state_best_pos);
            candidate_amplitude = state_best_value;
        end
        // L1 swung_against: the run before the crossing reached 3/4 of the candidate's size
        absolute_run = opposite_run_next < 0 ? 22'(-opposite_run_next) : 22'(opposite_run_next);
        absolute_candidate = candidate_amplitude < 0 ? 22'(-candidate_amplitude) : 22'(candidate_amplitude);
        candidate_swing = 24'(absolute_run) * 24'd4 >= 24'(absolute_candidate) * 24'd3 &&
                          candidate_amplitude != 21'sd0;
    end

    always_comb begin
        detector_write_enable = clearing_reg || q3_valid_reg;
        detector_write_address = clearing_reg ? clear_channel_reg[CHANNEL_BITS-1:0] : q3_channel_reg;
        detector_write_data = clearing_reg ? {74'd0, noise_initial_reg}
                                           : {opposite_run_next, hold_next, best_value_next, best_pos_next, count_next,
                                              searching_next, noise_next};
    end

    // ------------------------------------------------------------------------------------------------------------
    // Common reference clip levels (L1 ReferenceState): one RAM per bank, so that START clears both in MAX_CHANNELS
    // clocks. Stage 2 writes at q3 of a period's first frame, from the noise estimate before that frame's update, into
    // the bank of the next period; stage 1 reads the bank of its own frame at p4. The two never meet in one bank.
    // ------------------------------------------------------------------------------------------------------------
    wire clip_write = q3_valid_reg && !q3_flush_reg && q3_frame_reg[REFERENCE_PERIOD_BITS-1:0] == '0;
    wire clip_write_bank = !q3_frame_reg[REFERENCE_PERIOD_BITS];
    wire [CLIP_BITS-1:0] clip_write_data = q3_clip_reg[26:CLIP_BITS] != '0 ? {CLIP_BITS{1'b1}}
                                                                           : q3_clip_reg[CLIP_BITS-1:0];
    logic [CLIP_BITS-1:0] clip_read_data [0:1];

    for (genvar b = 0; b < 2; b = b + 1) begin : clip_bank
        spikeline_sdp_ram #(
            .WIDTH(CLIP_BITS),
            .DEPTH(MAX_CHANNELS)
        ) clip_ram (
            .clk(clk),
            .write_enable(clearing_reg || (clip_write && 32'(clip_write_bank) == b)),
            .write_address(clearing_reg ? clear_channel_reg[CHANNEL_BITS-1:0] : q3_channel_reg),
            .write_data(clearing_reg ? '0 : clip_write_data),
            .read_address(p4_channel_reg),
            .read_data(clip_read_data[b])
        );
    end

    // p5: the sample clamped to +- its clip level, and whether it reaches the level (clip 0: every sample does)
    wire signed [22:0] p5_clip = $signed({2'b00, p5_bank_reg ? clip_read_data[1] : clip_read_data[0]});
    wire signed [22:0] p5_sample = 23'(p5_filtered_reg);
    wire p5_below = p5_sample <= -p5_clip;
    wire p5_above = p5_sample >= p5_clip;
    wire signed [22:0] p5_clipped = p5_below ? -p5_clip : (p5_above ? p5_clip : p5_sample);
    wire [SLOT_BITS+GROUP_BITS-1:0] p5_sum_index = {p5_slot_reg, p5_group_reg[GROUP_BITS-1:0]};
    wire signed [17:0] p5_margin = group_margin_reg[p5_sum_index];

    assign monitor_valid = q3_valid_reg && !q3_flush_reg;
    assign monitor_channel = 16'(q3_channel_reg);
    assign monitor_sample = q3_referenced_reg;

    // ------------------------------------------------------------------------------------------------------------
    // Candidates -> de-duplication -> events
    // ------------------------------------------------------------------------------------------------------------
    wire candidate_push = q3_valid_reg && (candidate_valid || q3_last_reg);
    wire [112:0] candidate_entry = {candidate_swing && candidate_valid, q3_valid_reg && q3_last_reg && q3_flush_reg,
                                    q3_valid_reg && q3_last_reg && !q3_flush_reg, candidate_valid, q3_group_reg,
                                    candidate_amplitude, 16'(q3_channel_reg), candidate_sample};
    logic [112:0] candidate_head;
    logic candidate_empty, candidate_full, candidate_pop;

    spikeline_fifo #(
        .WIDTH(113),
        .DEPTH(CANDIDATE_FIFO_DEPTH)
    ) candidate_fifo (
        .clk(clk),
        .rst(rst),
        .clear(clearing_reg),
        .push(candidate_push),
        .push_data(candidate_entry),
        .pop(candidate_pop),
        .head(candidate_head),
        .empty(candidate_empty),
        .full(candidate_full),
        .count(candidate_count)
    );

    logic neighbour_write_enable;
    logic [NEIGHBOUR_ADDRESS_BITS-1:0] neighbour_write_address;
    logic event_push, event_full, event_empty, dedup_done, dedup_idle;
    logic [101:0] event_data, event_head;
    logic [31:0] dropped_count, artifact_count, artifact_candidate_count;
    logic artifact_limit_write_enable;
    logic [$clog2(EVENT_FIFO_DEPTH):0] event_count;

    spikeline_dedup #(
        .MAX_CHANNELS(MAX_CHANNELS),
        .PENDING_DEPTH(PENDING_DEPTH),
        .MAX_FRAME_CANDIDATES(MAX_FRAME_CANDIDATES),
        .MAX_FRAME_DECISIONS(MAX_FRAME_DECISIONS),
        .MAX_DECISION_DELAY(MAX_DECISION_DELAY),
        .MAX_GROUPS(MAX_GROUPS),
        .MAX_ARTIFACT_WINDOW(MAX_ARTIFACT_WINDOW),
        .MAX_NEIGHBOURS(MAX_NEIGHBOURS)
    ) dedup (
        .clk(clk),
        .rst(rst),
        .clear(clearing_reg),
        .align_window(align_window_reg),
        .dedup_window(dedup_window_reg),
        .shadow_window(shadow_window_reg),
        .shadow_ratio(shadow_ratio_reg),
        .artifact_window(artifact_window_reg),
        .artifact_blank(artifact_blank_reg),
        .artifact_limit_write_enable(artifact_limit_write_enable),
        .artifact_limit_write_address(write_address[7:2]),
        .artifact_limit_write_data(s_axil_wdata[15:0]),
        .neighbour_write_enable(neighbour_write_enable),
        .neighbour_write_address(neighbour_write_address),
        .neighbour_write_data(s_axil_wdata[15:0]),
        .entry_valid(!candidate_empty),
        .entry_data(candidate_head),
        .entry_pop(candidate_pop),
        .event_push(event_push),
        .event_data(event_data),
        .event_full(event_full),
        .stream_done(dedup_done),
        .idle(dedup_idle),
        .dropped_count(dropped_count),
        .artifact_count(artifact_count),
        .artifact_candidate_count(artifact_candidate_count)
    );

    spikeline_fifo #(
        .WIDTH(102),
        .DEPTH(EVENT_FIFO_DEPTH)
    ) event_fifo (
        .clk(clk),
        .rst(rst),
        .clear(clearing_reg),
        .push(event_push),
        .push_data(event_data),
        .pop(m_axis_tready),
        .head(event_head),
        .empty(event_empty),
        .full(event_full),
        .count(event_count)
    );

    assign m_axis_tvalid = !event_empty;
    assign m_axis_tdata = {{11{event_head[100]}}, event_head[100:80], 15'd0, event_head[101], event_head[79:64],
                           event_head[63:0]};
    assign m_axis_tlast = 1'b1;

    // ------------------------------------------------------------------------------------------------------------
    // AXI4-Lite
    // ------------------------------------------------------------------------------------------------------------
    logic bvalid_reg, rvalid_reg;
    logic [31:0] rdata_reg;
    wire write_transfer = s_axil_awvalid && s_axil_wvalid && !bvalid_reg;
    wire [19:0] write_address = s_axil_awaddr;
    wire write_scalar = write_transfer && write_address[19:8] == 12'd0;
    wire [5:0] write_register = write_address[7:2];
    wire [17:0] write_word = write_address[19:2];
    wire write_group_inverse = write_transfer && write_address[19:12] == 8'h01 &&
                               32'(write_address[11:2]) < MAX_GROUPS;
    wire write_artifact_limit = write_transfer && write_address[19:12] == 8'h02 &&
                                32'(write_address[11:2]) < MAX_GROUPS;
    wire write_group_of = write_transfer && write_address[19:16] == 4'h1 &&
                          32'(write_address[15:2]) < MAX_CHANNELS;
    wire [17:0] neighbour_index = write_word - 18'h10000;
    wire write_neighbour = write_transfer && write_address[19:18] == 2'b01 &&
                           32'(neighbour_index) < MAX_CHANNELS * MAX_NEIGHBOURS;
    wire start_command = write_scalar && write_register == 6'd0 && s_axil_wdata[0];
    wire flush_command = write_scalar && write_register == 6'd0 && s_axil_wdata[1];

    assign s_axil_awready = write_transfer;
    assign s_axil_wready = write_transfer;
    assign s_axil_bvalid = bvalid_reg;
    assign s_axil_bresp = 2'b00;
    assign s_axil_arready = !rvalid_reg;
    assign s_axil_rvalid = rvalid_reg;
    assign s_axil_rdata = rdata_reg;
    assign s_axil_rresp = 2'b00;

    assign group_write_enable = write_group_of;
    assign group_write_address = write_address[CHANNEL_BITS+1:2];
    assign group_write_data = s_axil_wdata[7:0];
    assign neighbour_write_enable = write_neighbour;
    assign artifact_limit_write_enable = write_artifact_limit;
    assign neighbour_write_address = neighbour_index[NEIGHBOUR_ADDRESS_BITS-1:0];

    // The spatial rule's partners: a table per partner slot k (channel, -1: none), read when a channel issues; the
    // frame buffer has a copy per slot, read at the partner's address one clock later, so that a channel's partners'
    // samples of the same frame arrive with it at q2.
    wire [17:0] partner_index = write_word - 18'h14000;
    wire write_partner = write_transfer && write_address[19:16] == 4'h5 &&
                         32'(partner_index) < MAX_CHANNELS * MAX_PARTNERS;

    for (genvar k = 0; k < MAX_PARTNERS; k = k + 1) begin : partner_slot
        spikeline_sdp_ram #(
            .WIDTH(16),
            .DEPTH(MAX_CHANNELS)
        ) partner_ram (
            .clk(clk),
            .write_enable(write_partner && 32'(partner_index[1:0]) == k),
            .write_address(partner_index[CHANNEL_BITS+1:2]),
            .write_data(s_axil_wdata[15:0]),
            .read_address(s2_channel_reg[CHANNEL_BITS-1:0]),
            .read_data(partner_read_data[k])
        );

        spikeline_sdp_ram #(
            .WIDTH(29),
            .DEPTH(FRAME_SLOTS * MAX_CHANNELS)
        ) partner_frame_ram (
            .clk(clk),
            .write_enable(p5_valid_reg),
            .write_address({p5_slot_reg, p5_channel_reg}),
            .write_data({p5_group_reg, p5_filtered_reg}),
            .read_address({q1_slot_reg, partner_read_data[k][CHANNEL_BITS-1:0]}),
            .read_data(partner_frame_data[k])
        );
    end

    wire stream_done = dedup_done && event_empty;
    // every frame taken in has been referenced and decided and its events have left (the RTL kernel's run end)
    wire quiet = stage1_empty && frames_ready_reg == 0 && slots_used_reg == 0 && s2_channel_reg == 16'd0 &&
                 stage2_empty && candidate_empty && dedup_idle && event_empty;
    logic [31:0] read_value;

    always_comb begin
        read_value = 32'd0;
        if (s_axil_araddr[19:8] == 12'd0) begin
            case (s_axil_araddr[7:2])
                6'd1: read_value = {27'd0, quiet, stream_active_reg, framing_error_reg, stream_done, clearing_reg};
                6'd2: read_value = MAX_CHANNELS;
                6'd3: read_value = MAX_GROUPS;
                6'd4: read_value = 32'(n_channels_reg);
                6'd5: read_value = PENDING_DEPTH;
                6'd6: read_value = MAX_FRAME_CANDIDATES;
                6'd7: read_value = MAX_FRAME_DECISIONS;
                6'd8: read_value = 32'(hp_gain_reg);
                6'd9: read_value = 32'(hp_a1_reg);
                6'd10: read_value = 32'(hp_a2_reg);
                6'd11: read_value = 32'(lp_gain_reg);
                6'd12: read_value = 32'(lp_a1_reg);
                6'd13: read_value = 32'(lp_a2_reg);
                6'd16: read_value = 32'(noise_step_fast_reg);
                6'd17: read_value = 32'(noise_step_slow_reg);
                6'd18: read_value = 32'(noise_initial_reg);
                6'd19: read_value = warmup_frames_reg;
                6'd20: read_value = 32'(threshold_gain_reg);
                6'd21: read_value = 32'(polarity_reg);
                6'd22: read_value = 32'(align_window_reg);
                6'd23: read_value = 32'(dead_time_reg);
                6'd24: read_value = 32'(dedup_window_reg);
                6'd25: read_value = 32'(shadow_window_reg);
                6'd26: read_value = 32'(shadow_ratio_reg);
                6'd27: read_value = 32'(artifact_window_reg);
                6'd28: read_value = 32'(artifact_blank_reg);
                6'd29: read_value = 32'(spatial_gate_gain_reg);
                6'd30: read_value = 32'(reference_clip_gain_reg);
                6'd40, 6'd41, 6'd42, 6'd43: read_value = 32'(spatial_gain_reg[s_axil_araddr[3:2]]);
                6'd32: read_value = s2_frame_reg[31:0];
                6'd33: read_value = s2_frame_reg[63:32];
                6'd34: read_value = dropped_count;
                6'd35: read_value = events_out_reg;
                6'd36: read_value = artifact_count;
                6'd37: read_value = artifact_candidate_count;
                default: read_value = 32'd0;
            endcase
        end
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            bvalid_reg <= 1'b0;
            rvalid_reg <= 1'b0;
            rdata_reg <= '0;
        end else begin
            if (write_transfer)
                bvalid_reg <= 1'b1;
            else if (s_axil_bready)
                bvalid_reg <= 1'b0;
            if (s_axil_arvalid && !rvalid_reg) begin
                rvalid_reg <= 1'b1;
                rdata_reg <= read_value;
            end else if (s_axil_rready) begin
                rvalid_reg <= 1'b0;
            end
        end
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            n_channels_reg <= '0;
            hp_gain_reg <= '0;
            hp_a1_reg <= '0;
            hp_a2_reg <= '0;
            lp_gain_reg <= '0;
            lp_a1_reg <= '0;
            lp_a2_reg <= '0;
            noise_step_fast_reg <= 23'd64;
            noise_step_slow_reg <= 23'd1;
            noise_initial_reg <= '0;
            warmup_frames_reg <= 32'd1024;
            threshold_gain_reg <= '0;
            polarity_reg <= '0;
            align_window_reg <= 7'd9;
            dead_time_reg <= 16'd18;
            dedup_window_reg <= 7'd9;
            shadow_window_reg <= 8'd60;
            shadow_ratio_reg <= 9'd128;
            artifact_window_reg <= '0;
            artifact_blank_reg <= '0;
            spatial_gate_gain_reg <= '0;
            reference_clip_gain_reg <= '0;
            for (int k = 0; k < MAX_PARTNERS; k = k + 1)
                spatial_gain_reg[k] <= '0;
        end else if (write_scalar) begin
            case (write_register)
                6'd4: n_channels_reg <= s_axil_wdata[15:0];
                6'd8: hp_gain_reg <= s_axil_wdata[15:0];
                6'd9: hp_a1_reg <= s_axil_wdata[15:0];
                6'd10: hp_a2_reg <= s_axil_wdata[15:0];
                6'd11: lp_gain_reg <= s_axil_wdata[15:0];
                6'd12: lp_a1_reg <= s_axil_wdata[15:0];
                6'd13: lp_a2_reg <= s_axil_wdata[15:0];
                6'd16: noise_step_fast_reg <= s_axil_wdata[22:0];
                6'd17: noise_step_slow_reg <= s_axil_wdata[22:0];
                6'd18: noise_initial_reg <= s_axil_wdata[22:0];
                6'd19: warmup_frames_reg <= s_axil_wdata;
                6'd20: threshold_gain_reg <= s_axil_wdata[15:0];
                6'd21: polarity_reg <= s_axil_wdata[1:0];
                6'd22: align_window_reg <= s_axil_wdata[6:0];
                6'd23: dead_time_reg <= s_axil_wdata[15:0];
                6'd24: dedup_window_reg <= s_axil_wdata[6:0];
                6'd25: shadow_window_reg <= s_axil_wdata[7:0];
                6'd26: shadow_ratio_reg <= s_axil_wdata[8:0];
                6'd27: artifact_window_reg <= s_axil_wdata[4:0];
                6'd28: artifact_blank_reg <= s_axil_wdata[15:0];
                6'd29: spatial_gate_gain_reg <= s_axil_wdata[15:0];
                6'd30: reference_clip_gain_reg <= s_axil_wdata[15:0];
                6'd40, 6'd41, 6'd42, 6'd43: spatial_gain_reg[write_register[1:0]] <= s_axil_wdata[15:0];
                default: ;
            endcase
        end
    end

    always_ff @(posedge clk) begin
        if (write_group_inverse)
            group_inverse_reg[write_address[GROUP_BITS+1:2]] <= s_axil_wdata[16:0];
    end

    // ------------------------------------------------------------------------------------------------------------
    // Control, stage 1 and stage 2 registers
    // ------------------------------------------------------------------------------------------------------------
    wire slot_allocated = accept && frame_start;
    wire slot_released = q1_valid_reg && q1_last_reg && !q1_flush_reg;
    wire frame_filtered = p5_valid_reg && p5_last_reg;
    wire frame_started = issue_frame && s2_channel_reg == 16'd0;

    always_ff @(posedge clk) begin
        if (rst || start_command) begin
            stream_active_reg <= 1'b0;
            clearing_reg <= start_command;
            clear_channel_reg <= '0;
            flush_requested_reg <= 1'b0;
            flush_sweep_reg <= 1'b0;
            flush_issued_reg <= 1'b0;
            framing_error_reg <= 1'b0;
            events_out_reg <= '0;
            in_channel_reg <= '0;
            in_slot_reg <= '0;
            in_frame_reg <= '0;
            slots_used_reg <= '0;
            frames_ready_reg <= '0;
            p1_valid_reg <= 1'b0;
            p2_valid_reg <= 1'b0;
            p3_valid_reg <= 1'b0;
            p4_valid_reg <= 1'b0;
            p5_valid_reg <= 1'b0;
            s2_slot_reg <= '0;
            s2_channel_reg <= '0;
            s2_frame_reg <= '0;
            q1_valid_reg <= 1'b0;
            q2_valid_reg <= 1'b0;
            q3_valid_reg <= 1'b0;
        end else begin
            if (clearing_reg) begin
                clear_channel_reg <= clear_channel_reg + 1'b1;
                if (clear_channel_reg == (CHANNEL_BITS + 1)'(MAX_CHANNELS - 1)) begin
                    clearing_reg <= 1'b0;
                    stream_active_reg <= 1'b1;
                end
            end
            if (flush_command && stream_active_reg)
                flush_requested_reg <= 1'b1;
            if (m_axis_tvalid && m_axis_tready)
                events_out_reg <= events_out_reg + 1'b1;

            // stage 1, p0: accept a sample
            p1_valid_reg <= accept;
            p1_channel_reg <= in_channel_reg[CHANNEL_BITS-1:0];
            p1_slot_reg <= in_slot_reg;
            p1_sample_reg <= s_axis_tdata;
            p1_last_reg <= last_input_channel;
            p1_bank_reg <= in_frame_reg[REFERENCE_PERIOD_BITS];
            if (accept) begin
                if (s_axis_tlast != last_input_channel)
                    framing_error_reg <= 1'b1;
                in_channel_reg <= last_input_channel ? 16'd0 : in_channel_reg + 16'd1;
                if (last_input_channel) begin
                    in_slot_reg <= in_slot_reg + 1'b1;
                    in_frame_reg <= in_frame_reg + 1'b1;
                end
            end
            // p1: high-pass products (registered inside the biquad)
            p2_valid_reg <= p1_valid_reg;
            p2_channel_reg <= p1_channel_reg;
            p2_slot_reg <= p1_slot_reg;
            p2_last_reg <= p1_last_reg;
            p2_bank_reg <= p1_bank_reg;
            p2_group_reg <= group_read_data;
            p2_input_reg <= p1_input;
            p2_input1_reg <= history_input1;
            p2_middle1_reg <= history_middle1;
            p2_middle2_reg <= history_middle2;
            p2_output1_reg <= history_output1;
            p2_output2_reg <= history_output2;
            // p2: high-pass sum, rounding, saturation
            p3_valid_reg <= p2_valid_reg;
            p3_channel_reg <= p2_channel_reg;
            p3_slot_reg <= p2_slot_reg;
            p3_last_reg <= p2_last_reg;
            p3_bank_reg <= p2_bank_reg;
            p3_group_reg <= p2_group_reg;
            p3_input_reg <= p2_input_reg;
            p3_input1_reg <= p2_input1_reg;
            p3_middle_reg <= high_passed;
            p3_middle1_reg <= p2_middle1_reg;
            p3_middle2_reg <= p2_middle2_reg;
            p3_output1_reg <= p2_output1_reg;
            p3_output2_reg <= p2_output2_reg;
            // p3: low-pass products
            p4_valid_reg <= p3_valid_reg;
            p4_channel_reg <= p3_channel_reg;
            p4_slot_reg <= p3_slot_reg;
            p4_last_reg <= p3_last_reg;
            p4_bank_reg <= p3_bank_reg;
            p4_group_reg <= p3_group_reg;
            p4_input_reg <= p3_input_reg;
            p4_input1_reg <= p3_input1_reg;
            p4_middle_reg <= p3_middle_reg;
            p4_middle1_reg <= p3_middle1_reg;
            p4_output1_reg <= p3_output1_reg;
            // p4: low-pass sum, history written back, Q4; clip level read
            p5_valid_reg <= p4_valid_reg;
            p5_channel_reg <= p4_channel_reg;
            p5_slot_reg <= p4_slot_reg;
            p5_last_reg <= p4_last_reg;
            p5_bank_reg <= p4_bank_reg;
            p5_group_reg <= p4_group_reg;
            p5_filtered_reg <= filtered_q4;
            // p5: frame buffer written (RAM above), group sums below

            slots_used_reg <= slots_used_reg + (SLOT_BITS + 1)'(slot_allocated) - (SLOT_BITS + 1)'(slot_released);
            frames_ready_reg <= frames_ready_reg + (SLOT_BITS + 1)'(frame_filtered) - (SLOT_BITS + 1)'(frame_started);

            // stage 2, q0: issue a channel
            q1_valid_reg <= issue;
            q1_channel_reg <= s2_channel_reg[CHANNEL_BITS-1:0];
            q1_slot_reg <= s2_slot_reg;
            q1_last_reg <= last_stage2_channel;
            q1_frame_reg <= s2_frame_reg;
            q1_flush_reg <= flush_sweep_reg;
            if (issue) begin
                s2_channel_reg <= last_stage2_channel ? 16'd0 : s2_channel_reg + 16'd1;
                if (last_stage2_channel && issue_frame) begin
                    s2_slot_reg <= s2_slot_reg + 1'b1;
                    s2_frame_reg <= s2_frame_reg + 64'd1;
                end
                if (last_stage2_channel && issue_flush)
                    flush_issued_reg <= 1'b1;
            end
            if (start_flush)
                flush_sweep_reg <= 1'b1;
            // q1: the group's sum times its inverse size
            q2_valid_reg <= q1_valid_reg;
            q2_channel_reg <= q1_channel_reg;
            q2_last_reg <= q1_last_reg;
            q2_frame_reg <= q1_frame_reg;
            q2_flush_reg <= q1_flush_reg;
            q2_scaled_sum_reg <= q1_scaled_sum;
            q2_filtered_reg <= q1_filtered;
            q2_unreferenced_reg <= q1_group < 0;
            q2_group_reg <= q1_group;
            q2_state_reg <= detector_read_data;
            for (int k = 0; k < MAX_PARTNERS; k = k + 1)
                q2_partner_valid_reg[k] <= !partner_read_data[k][15];
            // q2: reference subtracted, threshold
            q3_valid_reg <= q2_valid_reg;
            q3_channel_reg <= q2_channel_reg;
            q3_last_reg <= q2_last_reg;
            q3_frame_reg <= q2_frame_reg;
            q3_flush_reg <= q2_flush_reg;
            q3_referenced_reg <= q2_referenced;
            q3_state_reg <= q2_state_reg;
            q3_threshold_reg <= 32'(q2_scaled_threshold >> 8);
            q3_group_reg <= q2_group_reg;
            q3_gate_reg <= 32'(q2_scaled_gate >> 8);
            q3_clip_reg <= 27'(q2_scaled_clip >> 8);
            q3_spatial_limit_reg <= 32'(q2_scaled_limit >> 8);
            q3_partners_reg <= q2_partners;
            for (int k = 0; k < MAX_PARTNERS; k = k + 1)
                q3_partner_reg[k] <= q2_partner_referenced[k];
            // q3: detector state written and candidates pushed (above)
        end
    end

    // group sums: a slot's sums are cleared when stage 1 starts a frame in it. The slot is free then (stage 2 has
    // released it), so p5 never adds to it in the same clock; the clear is written last, so that it wins and maps to
    // the registers' synchronous reset (with the add on their clock enable) instead of a gate per bit.
    always_ff @(posedge clk) begin
        if (p5_valid_reg && !p5_group_reg[7]) begin
            group_plain_reg[p5_sum_index] <= group_plain_reg[p5_sum_index] + 32'(p5_filtered_reg);
            group_clipped_reg[p5_sum_index] <= group_clipped_reg[p5_sum_index] + 32'(p5_clipped);
            if ((p5_below || p5_above) && !p5_margin[17])
                group_margin_reg[p5_sum_index] <=
                    p5_margin - $signed({1'b0, group_inverse_reg[p5_group_reg[GROUP_BITS-1:0]]});
        end
        if (slot_allocated) begin
            for (int g = 0; g < MAX_GROUPS; g = g + 1) begin
                group_plain_reg[{in_slot_reg, GROUP_BITS'(g)}] <= 32'sd0;
                group_clipped_reg[{in_slot_reg, GROUP_BITS'(g)}] <= 32'sd0;
                group_margin_reg[{in_slot_reg, GROUP_BITS'(g)}] <= PLAIN_LIMIT;
            end
        end
    end
endmodule

`default_nettype wire
