// Spatio-temporal de-duplication, the FSM form of L1's spatial_dedup.hpp (dedup_add / dedup_advance / survives).
//
// Input: the detector's entries in order: a candidate (peak sample, channel, reference group, amplitude), a frame
// end, or the end of the stream (a frame end may carry the frame's last candidate). A candidate first counts
// towards its group's artefact window (L1 artifact_rejection.hpp) and is dropped if the group is blanking; else it
// joins a pending list of PENDING_DEPTH entries, at most MAX_FRAME_CANDIDATES per frame (beyond either: dropped and
// counted, as L1 does). At a frame end f:
//   ARTIFACT every group's window slides by one frame (all groups in one clock); groups over their limit are
//            declared, and those that were not in an artefact are logged;
//   LOG      the new artefacts go out on the event stream (flagged), groups ascending;
//   MARK     when a group was declared, one scan removes its undecided candidates from the list (in order);
//   then up to MAX_FRAME_DECISIONS undecided candidates with sample + dedup_window + align_window - 1 <= f (at the
//   end of the stream: all of them) are decided one by one in (sample, channel) order, L1's order:
//   SELECT  one scan of the list finds the smallest eligible (sample, channel);
//   LOAD    its channel's 16 neighbours are read;
//   SURVIVE one scan compares it with every pending candidate (L1's survives(): lobe of any neighbour, duplicate of a near
//           one or of a far one that is not later), then marks it decided and, if it survived, emits it.
// After the last decision of a frame, COMPACT keeps (in order) the candidates L1 keeps: undecided (unless they have
// waited MAX_DECISION_DELAY frame ends: dropped and counted), or decided and still within max(dedup_window,
// shadow_window) of a future decision. The same list, the same drop rules and the
// same compaction times make the result equal to L1's even when the list overflows.
// Cost per frame end, bounded whatever the input: 3 + 2 MAX_FRAME_DECISIONS scans of at most PENDING_DEPTH entries,
// 17 clocks per decision, 64 clocks of LOG after an artefact, plus one clock per candidate taken in; at the defaults
// (512, 4) at most 6.3 k clocks, inside the 8.3 k clocks of a 1024-channel frame at 30 kHz and 250 MHz.
`default_nettype none

module spikeline_dedup #(
    parameter int MAX_CHANNELS = 1024,
    parameter int PENDING_DEPTH = 512,
    parameter int MAX_FRAME_CANDIDATES = 64,
    parameter int MAX_FRAME_DECISIONS = 4,
    parameter int MAX_DECISION_DELAY = 16,
    parameter int MAX_GROUPS = 64,
    parameter int MAX_ARTIFACT_WINDOW = 16,
    parameter int MAX_NEIGHBOURS = 16,
    parameter int NEIGHBOUR_ADDRESS_BITS = $clog2(MAX_CHANNELS * MAX_NEIGHBOURS)
) (
    input  wire logic                              clk,
    input  wire logic                              rst,
    input  wire logic                              clear,            // start of a stream: forget everything
    // parameters (stable while a stream runs)
    input  wire logic [6:0]                        align_window,
    input  wire logic [6:0]                        dedup_window,
    input  wire logic [7:0]                        shadow_window,
    input  wire logic [8:0]                        shadow_ratio,
    input  wire logic [4:0]                        artifact_window,  // 0: artefact rejection off
    input  wire logic [15:0]                       artifact_blank,
    input  wire logic                              artifact_limit_write_enable,
    input  wire logic [5:0]                        artifact_limit_write_address,
    input  wire logic [15:0]                       artifact_limit_write_data,
    // neighbour table: entry MAX_NEIGHBOURS * channel + k, -1 padded (AXI-Lite writes it)
    input  wire logic                              neighbour_write_enable,
    input  wire logic [NEIGHBOUR_ADDRESS_BITS-1:0] neighbour_write_address,
    input  wire logic [15:0]                       neighbour_write_data,
    // entries from the detector: {swing, end_of_stream, frame_end, candidate_valid, group[7:0] (signed),
    // amplitude[20:0], channel[15:0], sample[63:0]}
    input  wire logic                              entry_valid,
    input  wire logic [112:0]                      entry_data,
    output logic                                   entry_pop,
    // surviving events {0, amplitude[20:0], channel[15:0], sample[63:0]} and artefacts {1, crossings[20:0],
    // group[15:0], sample[63:0]}
    output logic                                   event_push,
    output logic [101:0]                           event_data,
    input  wire logic                              event_full,
    output logic                                   stream_done,      // end of stream decided and emitted
    output logic                                   idle,             // no frame end or decision in progress
    output logic [31:0]                            dropped_count,
    output logic [31:0]                            artifact_count,
    output logic [31:0]                            artifact_candidate_count
);
    localparam int PENDING_BITS = $clog2(PENDING_DEPTH);
    localparam logic [PENDING_BITS:0] PENDING_FULL = (PENDING_BITS + 1)'(PENDING_DEPTH);
    localparam int GROUP_BITS = $clog2(MAX_GROUPS);
    localparam int SLOT_BITS = $clog2(MAX_ARTIFACT_WINDOW);
    localparam int FRAME_COUNT_BITS = $clog2(MAX_CHANNELS) + 1;               // candidates of a group in one frame
    localparam int SUM_BITS = $clog2(MAX_CHANNELS * MAX_ARTIFACT_WINDOW) + 1; // in the window
    localparam int FRAME_CANDIDATE_BITS = $clog2(MAX_FRAME_CANDIDATES) + 1;
    localparam int DECISION_BITS = $clog2(MAX_FRAME_DECISIONS) + 1;

    // pending entry: {swing, decided, group[7:0], amplitude[20:0], channel[15:0], sample[63:0]}
    localparam int ENTRY_BITS = 111;

    typedef enum logic [3:0] {
        S_IDLE,
        S_ARTIFACT,
        S_LOG,
        S_MARK,
        S_SELECT,
        S_LOAD,
        S_SURVIVE,
        S_EMIT,
        S_COMPACT,
        S_DONE
    } state_t;

    state_t state_reg;
    logic final_reg;                         // deciding at the end of the stream
    logic [63:0] frame_reg;                  // frame whose end is being processed
    logic [PENDING_BITS:0] count_reg;        // entries in the list
    logic [PENDING_BITS:0] scan_issue_reg;   // next index to read
    logic scan_data_valid_reg;               // the RAM's read data is entry scan_data_index_reg
    logic [PENDING_BITS:0] scan_data_index_reg;
    logic [PENDING_BITS:0] kept_reg;         // COMPACT: entries kept so far
    logic found_reg;                         // SELECT: an eligible entry was seen
    logic [PENDING_BITS:0] chosen_index_reg; // the candidate being decided (A)
    logic [63:0] chosen_sample_reg;
    logic [15:0] chosen_channel_reg;
    logic signed [20:0] chosen_amplitude_reg;
    logic signed [7:0] chosen_group_reg;
    logic chosen_swing_reg; // L1 SpikeEvent::swing of A
    logic killed_reg;                        // SURVIVE: a neighbour beats A
    logic [4:0] load_issue_reg;              // LOAD: next neighbour to read
    logic load_data_valid_reg;
    logic [3:0] load_data_index_reg;
    logic signed [15:0] neighbour_reg [0:MAX_NEIGHBOURS-1];
    logic [31:0] dropped_reg;
    logic [FRAME_CANDIDATE_BITS-1:0] frame_candidates_reg; // queued since the last frame end
    logic [DECISION_BITS-1:0] decisions_reg;               // made at this frame end

    // ---- artefact state per group (registers: every group slides its window in the same clock) ----
    logic [FRAME_COUNT_BITS-1:0] frame_count_reg [0:MAX_GROUPS-1];
    logic [FRAME_COUNT_BITS-1:0] history_reg [0:MAX_ARTIFACT_WINDOW*MAX_GROUPS-1];
    logic [SUM_BITS-1:0] window_sum_reg [0:MAX_GROUPS-1];
    logic [15:0] blank_left_reg [0:MAX_GROUPS-1];
    logic [15:0] artifact_limit_reg [0:MAX_GROUPS-1];
    logic [MAX_GROUPS-1:0] active_reg, declared_reg, logged_reg;
    logic [SLOT_BITS-1:0] slot_reg;
    logic [GROUP_BITS:0] log_group_reg;      // LOG: next group to look at
    logic [31:0] artifact_count_reg, artifact_candidates_reg;

    // ---- the pending list (block RAM) ----
    logic pending_write_enable;
    logic [PENDING_BITS-1:0] pending_write_address, pending_read_address;
    logic [ENTRY_BITS-1:0] pending_write_data, pending_read_data;

    spikeline_sdp_ram #(
        .WIDTH(ENTRY_BITS),
        .DEPTH(PENDING_DEPTH)
    ) pending_ram (
        .clk(clk),
        .write_enable(pending_write_enable),
        .write_address(pending_write_address),
        .write_data(pending_write_data),
        .read_address(pending_read_address),
        .read_data(pending_read_data)
    );

    // ---- the neighbour table (block RAM) ----
    logic [NEIGHBOUR_ADDRESS_BITS-1:0] neighbour_read_address;
    logic [15:0] neighbour_read_data;

    spikeline_sdp_ram #(
        .WIDTH(16),
        .DEPTH(MAX_CHANNELS * MAX_NEIGHBOURS)
    ) neighbour_ram (
        .clk(clk),
        .write_enable(neighbour_write_enable),
        .write_address(neighbour_write_address),
        .write_data(neighbour_write_data),
        .read_address(neighbour_read_address),
        .read_data(neighbour_read_data)
    );

    // ---- fields of the entry being read ----
    wire entry_swing = pending_read_data[110];
    wire entry_decided = pending_read_data[109];
    wire signed [7:0] entry_group = pending_read_data[108:101];
    wire signed [20:0] entry_amplitude = pending_read_data[100:80];
    wire [15:0] entry_channel = pending_read_data[79:64];
    wire [63:0] entry_sample = pending_read_data[63:0];

    // the incoming candidate: its group's artefact state and whether it joins the list
    wire incoming_candidate = entry_valid && entry_data[109];
    wire signed [7:0] incoming_group = entry_data[108:101];
    wire incoming_counted = incoming_candidate && artifact_window != 5'd0 && !incoming_group[7];
    wire [GROUP_BITS-1:0] incoming_group_index = incoming_group[GROUP_BITS-1:0];
    wire incoming_blanked = incoming_counted && blank_left_reg[incoming_group_index] != 16'd0;
    wire incoming_queued = incoming_candidate && !incoming_blanked && count_reg != PENDING_FULL &&
                           frame_candidates_reg != FRAME_CANDIDATE_BITS'(MAX_FRAME_CANDIDATES);
    wire [63:0] latency = 64'(align_window) + 64'(dedup_window) - 64'd1;
    // an artefact's sample: the frame of the latest crossing counted (candidates leave align_window - 1 frames later)
    wire [63:0] artifact_sample = frame_reg > 64'(align_window) - 64'd1 ? frame_reg - 64'(align_window) + 64'd1 : '0;
    wire [GROUP_BITS-1:0] log_group = log_group_reg[GROUP_BITS-1:0];
    wire log_this_group = log_group_reg != (GROUP_BITS + 1)'(MAX_GROUPS) && logged_reg[log_group];
    // MARK: an undecided candidate of a group declared at this frame end leaves the list
    wire entry_in_artifact = !entry_decided && !entry_group[7] && declared_reg[entry_group[GROUP_BITS-1:0]];
    wire [63:0] keep = 8'(dedup_window) > shadow_window ? 64'(dedup_window) : 64'(shadow_window);
    wire [21:0] chosen_magnitude = chosen_amplitude_reg < 0 ? 22'(-chosen_amplitude_reg) : 22'(chosen_amplitude_reg);
    wire [21:0] entry_magnitude = entry_amplitude < 0 ? 22'(-entry_amplitude) : 22'(entry_amplitude);

    // SELECT: eligible for a decision now, and before the best seen so far in (sample, channel) order
    logic eligible, precedes_found;
    // SURVIVE: the entry (B) beats the chosen candidate (A) and is in A's neighbourhood
    logic [63:0] distance;
    logic outranks, duplicate, lobe, is_neighbour, is_far, neighbour_alive, kills;
    // COMPACT: L1 still needs the entry
    logic needed, stale;

    // ARTIFACT: every group's window after this frame, and whether it passes the group's limit
    logic [SUM_BITS-1:0] window_sum_next [0:MAX_GROUPS-1];
    logic [MAX_GROUPS-1:0] declared_next, blanking_after;
    always_comb begin
        for (int g = 0; g < MAX_GROUPS; g = g + 1) begin
            window_sum_next[g] = window_sum_reg[g] + SUM_BITS'(frame_count_reg[g]) -
                                 SUM_BITS'(history_reg[{slot_reg, GROUP_BITS'(g)}]);
            declared_next[g] = 32'(window_sum_next[g]) > 32'(artifact_limit_reg[g]);
            blanking_after[g] = declared_next[g] ? artifact_blank != 16'd0 : blank_left_reg[g] > 16'd1;
        end
    end

    always_ff @(posedge clk) begin
        if (artifact_limit_write_enable)
            artifact_limit_reg[artifact_limit_write_address[GROUP_BITS-1:0]] <= artifact_limit_write_data;
    end

    always_comb begin
        eligible = !entry_decided && (final_reg || entry_sample + latency <= frame_reg);
        precedes_found = !found_reg || entry_sample < chosen_sample_reg ||
                         (entry_sample == chosen_sample_reg && entry_channel < chosen_channel_reg);

        distance = chosen_sample_reg > entry_sample ? chosen_sample_reg - entry_sample
                                                    : entry_sample - chosen_sample_reg;
        if (entry_magnitude != chosen_magnitude)
            outranks = entry_magnitude > chosen_magnitude;
        else if (entry_sample != chosen_sample_reg)
            outranks = entry_sample < chosen_sample_reg;
        else
            outranks = entry_channel < chosen_channel_reg;
        // L1's neighbourhood: the channel itself (near), or a list entry before the first negative one; bit 14 of
        // an entry flags a far neighbour, bits 13:0 are its channel
        is_neighbour = entry_channel == chosen_channel_reg;
        is_far = 1'b0;
        neighbour_alive = 1'b1;
        for (int k = 0; k < MAX_NEIGHBOURS; k = k + 1) begin
            if (neighbour_reg[k] < 0)
                neighbour_alive = 1'b0;
            if (neighbour_alive && neighbour_reg[k][13:0] == entry_channel[13:0] &&
                entry_channel[15:14] == 2'b00) begin
                is_neighbour = 1'b1;
                is_far = neighbour_reg[k][14];
            end
        end
        // a far neighbour's larger candidate absorbs A only when it is not later; lobes reach the far ones too
        duplicate = distance <= 64'(dedup_window) && outranks && (!is_far || entry_sample <= chosen_sample_reg);
        lobe = entry_sample < chosen_sample_reg && distance <= 64'(shadow_window) &&
               ({chosen_magnitude, 8'd0} < 30'(entry_magnitude) * 30'(shadow_ratio) ||
                (chosen_swing_reg && chosen_magnitude < entry_magnitude));
        kills = (duplicate || lobe) && is_neighbour;

        needed = !entry_decided || entry_sample + latency + keep > frame_reg;
        stale = !entry_decided && entry_sample + latency + 64'(MAX_DECISION_DELAY) <= frame_reg;
    end

    wire scan_done = scan_issue_reg == count_reg && !scan_data_valid_reg;

    always_comb begin
        pending_write_enable = 1'b0;
        pending_write_address = count_reg[PENDING_BITS-1:0];
        pending_write_data = {entry_data[112], 1'b0, entry_data[108:0]};
        pending_read_address = scan_issue_reg[PENDING_BITS-1:0];
        neighbour_read_address = NEIGHBOUR_ADDRESS_BITS'(chosen_channel_reg) * NEIGHBOUR_ADDRESS_BITS'(MAX_NEIGHBOURS) +
                                 NEIGHBOUR_ADDRESS_BITS'(load_issue_reg[3:0]);
        entry_pop = 1'b0;
        event_push = 1'b0;
        event_data = {1'b0, chosen_amplitude_reg, chosen_channel_reg, chosen_sample_reg};
        case (state_reg)
            S_IDLE: begin
                entry_pop = entry_valid;
                pending_write_enable = incoming_queued;
            end
            S_LOG: begin
                event_push = log_this_group && !event_full;
                event_data = {1'b1, 21'(window_sum_reg[log_group]), 16'(log_group), artifact_sample};
            end
            S_MARK: begin
                pending_write_enable = scan_data_valid_reg && !entry_in_artifact;
                pending_write_address = kept_reg[PENDING_BITS-1:0];
                pending_write_data = pending_read_data;
            end
            S_SURVIVE: begin
                if (scan_done) begin
                    pending_write_enable = 1'b1;
                    pending_write_address = chosen_index_reg[PENDING_BITS-1:0];
                    pending_write_data = {chosen_swing_reg, 1'b1, chosen_group_reg, chosen_amplitude_reg,
                                          chosen_channel_reg, chosen_sample_reg};
                end
            end
            S_EMIT: event_push = !event_full;
            S_COMPACT: begin
                pending_write_enable = scan_data_valid_reg && needed && !stale;
                pending_write_address = kept_reg[PENDING_BITS-1:0];
                pending_write_data = pending_read_data;
            end
            default: ;
        endcase
    end

    assign stream_done = state_reg == S_DONE;
    assign idle = state_reg == S_IDLE;
    assign dropped_count = dropped_reg;
    assign artifact_count = artifact_count_reg;
    assign artifact_candidate_count = artifact_candidates_reg;

    always_ff @(posedge clk) begin
        if (rst || clear) begin
            state_reg <= S_IDLE;
            final_reg <= 1'b0;
            frame_reg <= '0;
            count_reg <= '0;
            scan_issue_reg <= '0;
            scan_data_valid_reg <= 1'b0;
            scan_data_index_reg <= '0;
            kept_reg <= '0;
            found_reg <= 1'b0;
            chosen_index_reg <= '0;
            chosen_sample_reg <= '0;
            chosen_channel_reg <= '0;
            chosen_amplitude_reg <= '0;
            killed_reg <= 1'b0;
            load_issue_reg <= '0;
            load_data_valid_reg <= 1'b0;
            load_data_index_reg <= '0;
            dropped_reg <= '0;
            frame_candidates_reg <= '0;
            decisions_reg <= '0;
            chosen_group_reg <= '0;
            chosen_swing_reg <= 1'b0;
            active_reg <= '0;
            declared_reg <= '0;
            logged_reg <= '0;
            slot_reg <= '0;
            log_group_reg <= '0;
            artifact_count_reg <= '0;
            artifact_candidates_reg <= '0;
            for (int g = 0; g < MAX_GROUPS; g = g + 1) begin
                frame_count_reg[g] <= '0;
                window_sum_reg[g] <= '0;
                blank_left_reg[g] <= '0;
            end
            for (int slot = 0; slot < MAX_ARTIFACT_WINDOW; slot = slot + 1)
                for (int g = 0; g < MAX_GROUPS; g = g + 1)
                    history_reg[{SLOT_BITS'(slot), GROUP_BITS'(g)}] <= '0;
        end else begin
            // list scans: one read per cycle, the data one cycle later
            if (state_reg == S_MARK || state_reg == S_SELECT || state_reg == S_SURVIVE || state_reg == S_COMPACT) begin
                scan_data_valid_reg <= scan_issue_reg != count_reg;
                scan_data_index_reg <= scan_issue_reg;
                if (scan_issue_reg != count_reg)
                    scan_issue_reg <= scan_issue_reg + 1'b1;
            end
            case (state_reg)
                S_IDLE: begin
                    if (entry_valid) begin
                        if (incoming_counted)
                            frame_count_reg[incoming_group_index] <= frame_count_reg[incoming_group_index] + 1'b1;
                        if (incoming_blanked)
                            artifact_candidates_reg <= artifact_candidates_reg + 1'b1;
                        else if (incoming_candidate && !incoming_queued)
                            dropped_reg <= dropped_reg + 1'b1;
                        if (incoming_queued) begin
                            count_reg <= count_reg + 1'b1;
                            frame_candidates_reg <= frame_candidates_reg + 1'b1;
                        end
                        if (entry_data[110] || entry_data[111]) begin
                            final_reg <= entry_data[111];
                            state_reg <= S_ARTIFACT;
                        end
                    end
                end
                S_ARTIFACT: begin
                    // L1 artifact_end_frame: every group's window slides by this frame
                    frame_candidates_reg <= '0;
                    decisions_reg <= '0;
                    log_group_reg <= '0;
                    if (artifact_window != 5'd0) begin
                        for (int g = 0; g < MAX_GROUPS; g = g + 1) begin
                            history_reg[{slot_reg, GROUP_BITS'(g)}] <= frame_count_reg[g];
                            frame_count_reg[g] <= '0;
                            window_sum_reg[g] <= window_sum_next[g];
                            if (declared_next[g])
                                blank_left_reg[g] <= artifact_blank;
                            else if (blank_left_reg[g] != 16'd0)
                                blank_left_reg[g] <= blank_left_reg[g] - 16'd1;
                        end
                        declared_reg <= declared_next;
                        logged_reg <= declared_next & ~active_reg;
                        // L1: active = declared, or blanking after this frame end
                        active_reg <= declared_next | blanking_after;
                        slot_reg <= 5'(slot_reg) + 5'd1 == artifact_window ? '0 : slot_reg + 1'b1;
                        if ((declared_next & ~active_reg) != '0)
                            state_reg <= S_LOG;
                        else
                            state_reg <= declared_next != '0 ? S_MARK : S_SELECT;
                    end else begin
                        declared_reg <= '0;
                        logged_reg <= '0;
                        state_reg <= S_SELECT;
                    end
                    scan_issue_reg <= '0;
                    scan_data_valid_reg <= 1'b0;
                    kept_reg <= '0;
                    found_reg <= 1'b0;
                end
                S_LOG: begin
                    if (!log_this_group || !event_full) begin
                        if (log_this_group)
                            artifact_count_reg <= artifact_count_reg + 1'b1;
                        if (log_group_reg != (GROUP_BITS + 1)'(MAX_GROUPS)) begin
                            log_group_reg <= log_group_reg + 1'b1;
                        end else begin
                            state_reg <= declared_reg != '0 ? S_MARK : S_SELECT;
                            scan_issue_reg <= '0;
                            scan_data_valid_reg <= 1'b0;
                            kept_reg <= '0;
                            found_reg <= 1'b0;
                        end
                    end
                end
                S_MARK: begin
                    if (scan_data_valid_reg && !entry_in_artifact)
                        kept_reg <= kept_reg + 1'b1;
                    if (scan_data_valid_reg && entry_in_artifact)
                        artifact_candidates_reg <= artifact_candidates_reg + 1'b1;
                    if (scan_done) begin
                        count_reg <= kept_reg;
                        state_reg <= S_SELECT;
                        scan_issue_reg <= '0;
                        found_reg <= 1'b0;
                    end
                end
                S_SELECT: begin
                    if (scan_data_valid_reg && eligible && precedes_found) begin
                        found_reg <= 1'b1;
                        chosen_index_reg <= scan_data_index_reg;
                        chosen_sample_reg <= entry_sample;
                        chosen_channel_reg <= entry_channel;
                        chosen_amplitude_reg <= entry_amplitude;
                        chosen_group_reg <= entry_group;
                        chosen_swing_reg <= entry_swing;
                    end
                    if (scan_done) begin
                        scan_issue_reg <= '0;
                        if (found_reg && (final_reg || decisions_reg != DECISION_BITS'(MAX_FRAME_DECISIONS))) begin
                            decisions_reg <= decisions_reg + 1'b1;
                            state_reg <= S_LOAD;
                            load_issue_reg <= '0;
                            load_data_valid_reg <= 1'b0;
                        end else if (final_reg) begin
                            state_reg <= S_DONE;
                        end else begin
                            state_reg <= S_COMPACT;
                            kept_reg <= '0;
                        end
                    end
                end
                S_LOAD: begin
                    load_data_valid_reg <= load_issue_reg != 5'(MAX_NEIGHBOURS);
                    load_data_index_reg <= load_issue_reg[3:0];
                    if (load_issue_reg != 5'(MAX_NEIGHBOURS))
                        load_issue_reg <= load_issue_reg + 1'b1;
                    if (load_data_valid_reg)
                        neighbour_reg[load_data_index_reg] <= neighbour_read_data;
                    if (load_data_valid_reg && load_data_index_reg == 4'(MAX_NEIGHBOURS - 1)) begin
                        state_reg <= S_SURVIVE;
                        scan_issue_reg <= '0;
                        scan_data_valid_reg <= 1'b0;
                        killed_reg <= 1'b0;
                    end
                end
                S_SURVIVE: begin
                    if (scan_data_valid_reg && kills)
                        killed_reg <= 1'b1;
                    if (scan_done) begin
                        // the decided flag is written by the combinational block above
                        if (killed_reg) begin
                            state_reg <= S_SELECT;
                            scan_issue_reg <= '0;
                            found_reg <= 1'b0;
                        end else begin
                            state_reg <= S_EMIT;
                        end
                    end
                end
                S_EMIT: begin
                    if (!event_full) begin
                        state_reg <= S_SELECT;
                        scan_issue_reg <= '0;
                        scan_data_valid_reg <= 1'b0;
                        found_reg <= 1'b0;
                    end
                end
                S_COMPACT: begin
                    if (scan_data_valid_reg && needed && !stale)
                        kept_reg <= kept_reg + 1'b1;
                    if (scan_data_valid_reg && stale)
                        dropped_reg <= dropped_reg + 1'b1;
                    if (scan_done) begin
                        count_reg <= kept_reg;
                        frame_reg <= frame_reg + 64'd1;
                        state_reg <= S_IDLE;
                        scan_issue_reg <= '0;
                    end
                end
                default: ;
            endcase
        end
    end
endmodule

`default_nettype wire
