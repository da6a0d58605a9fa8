// Spatio-temporal de-duplication, the FSM form of L1's spatial_dedup.hpp (dedup_add / dedup_advance / survives).
//
// Input: the detector's entries in order: a candidate (peak sample, channel, amplitude), a frame end, or the end
// of the stream. Candidates join a pending list of PENDING_DEPTH entries (a full list drops and counts them, as
// L1 does). At a frame end f, the undecided candidates with sample + dedup_window + align_window - 1 <= f (at the
// end of the stream: all of them) are decided one by one in (sample, channel) order, which is also the order in
// which L1 emits its survivors:
//   SELECT  one scan of the list finds the smallest eligible (sample, channel);
//   LOAD    its channel's 16 neighbours are read;
//   SURVIVE one scan compares it with every pending candidate (L1's survives(): duplicate or lobe of a near
//           neighbour, duplicate of a far one that is not later), then marks it decided and, if it survived, emits it.
// After the last decision of a frame, COMPACT keeps (in order) the candidates L1 keeps: undecided, or decided and
// still within max(dedup_window, shadow_window) of a future decision. The same list, the same drop rule and the
// same compaction times make the result equal to L1's even when the list overflows.
// Cost: per frame 2 scans of the list, per decided candidate 2 scans + 17 cycles; few candidates per frame.
`default_nettype none

module spikeline_dedup #(
    parameter int MAX_CHANNELS = 1024,
    parameter int PENDING_DEPTH = 4096,
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
    // neighbour table: entry MAX_NEIGHBOURS * channel + k, -1 padded (AXI-Lite writes it)
    input  wire logic                              neighbour_write_enable,
    input  wire logic [NEIGHBOUR_ADDRESS_BITS-1:0] neighbour_write_address,
    input  wire logic [15:0]                       neighbour_write_data,
    // entries from the detector: {end_of_stream, frame_end, candidate_valid, amplitude[20:0], channel[15:0], sample[63:0]}
    input  wire logic                              entry_valid,
    input  wire logic [103:0]                      entry_data,
    output logic                                   entry_pop,
    // surviving events: {amplitude[20:0], channel[15:0], sample[63:0]}
    output logic                                   event_push,
    output logic [100:0]                           event_data,
    input  wire logic                              event_full,
    output logic                                   stream_done,      // end of stream decided and emitted
    output logic [31:0]                            dropped_count
);
    localparam int PENDING_BITS = $clog2(PENDING_DEPTH);
    localparam logic [PENDING_BITS:0] PENDING_FULL = (PENDING_BITS + 1)'(PENDING_DEPTH);

    // pending entry: {decided, amplitude[20:0], channel[15:0], sample[63:0]}
    localparam int ENTRY_BITS = 102;

    typedef enum logic [2:0] {
        S_IDLE,
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
    logic killed_reg;                        // SURVIVE: a neighbour beats A
    logic [4:0] load_issue_reg;              // LOAD: next neighbour to read
    logic load_data_valid_reg;
    logic [3:0] load_data_index_reg;
    logic signed [15:0] neighbour_reg [0:MAX_NEIGHBOURS-1];
    logic [31:0] dropped_reg;

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
    wire entry_decided = pending_read_data[101];
    wire signed [20:0] entry_amplitude = pending_read_data[100:80];
    wire [15:0] entry_channel = pending_read_data[79:64];
    wire [63:0] entry_sample = pending_read_data[63:0];

    wire [63:0] latency = 64'(align_window) + 64'(dedup_window) - 64'd1;
    wire [63:0] keep = 8'(dedup_window) > shadow_window ? 64'(dedup_window) : 64'(shadow_window);
    wire [21:0] chosen_magnitude = chosen_amplitude_reg < 0 ? 22'(-chosen_amplitude_reg) : 22'(chosen_amplitude_reg);
    wire [21:0] entry_magnitude = entry_amplitude < 0 ? 22'(-entry_amplitude) : 22'(entry_amplitude);

    // SELECT: eligible for a decision now, and before the best seen so far in (sample, channel) order
    logic eligible, precedes_found;
    // SURVIVE: the entry (B) beats the chosen candidate (A) and is in A's neighbourhood
    logic [63:0] distance;
    logic outranks, duplicate, lobe, is_neighbour, is_far, neighbour_alive, kills;
    // COMPACT: L1 still needs the entry
    logic needed;

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
        // a far neighbour's larger candidate absorbs A only when it is not later; lobes are near only
        duplicate = distance <= 64'(dedup_window) && outranks && (!is_far || entry_sample <= chosen_sample_reg);
        lobe = !is_far && entry_sample < chosen_sample_reg && distance <= 64'(shadow_window) &&
               {chosen_magnitude, 8'd0} < 30'(entry_magnitude) * 30'(shadow_ratio);
        kills = (duplicate || lobe) && is_neighbour;

        needed = !entry_decided || entry_sample + latency + keep > frame_reg;
    end

    wire scan_done = scan_issue_reg == count_reg && !scan_data_valid_reg;

    always_comb begin
        pending_write_enable = 1'b0;
        pending_write_address = count_reg[PENDING_BITS-1:0];
        pending_write_data = {1'b0, entry_data[100:0]};
        pending_read_address = scan_issue_reg[PENDING_BITS-1:0];
        neighbour_read_address = NEIGHBOUR_ADDRESS_BITS'(chosen_channel_reg) * NEIGHBOUR_ADDRESS_BITS'(MAX_NEIGHBOURS) +
                                 NEIGHBOUR_ADDRESS_BITS'(load_issue_reg[3:0]);
        entry_pop = 1'b0;
        event_push = 1'b0;
        event_data = {chosen_amplitude_reg, chosen_channel_reg, chosen_sample_reg};
        case (state_reg)
            S_IDLE: begin
                entry_pop = entry_valid;
                pending_write_enable = entry_valid && entry_data[101] && count_reg != PENDING_FULL;
            end
            S_SURVIVE: begin
                if (scan_done) begin
                    pending_write_enable = 1'b1;
                    pending_write_address = chosen_index_reg[PENDING_BITS-1:0];
                    pending_write_data = {1'b1, chosen_amplitude_reg, chosen_channel_reg, chosen_sample_reg};
                end
            end
            S_EMIT: event_push = !event_full;
            S_COMPACT: begin
                pending_write_enable = scan_data_valid_reg && needed;
                pending_write_address = kept_reg[PENDING_BITS-1:0];
                pending_write_data = pending_read_data;
            end
            default: ;
        endcase
    end

    assign stream_done = state_reg == S_DONE;
    assign dropped_count = dropped_reg;

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
        end else begin
            // list scans: one read per cycle, the data one cycle later
            if (state_reg == S_SELECT || state_reg == S_SURVIVE || state_reg == S_COMPACT) begin
                scan_data_valid_reg <= scan_issue_reg != count_reg;
                scan_data_index_reg <= scan_issue_reg;
                if (scan_issue_reg != count_reg)
                    scan_issue_reg <= scan_issue_reg + 1'b1;
            end
            case (state_reg)
                S_IDLE: begin
                    if (entry_valid) begin
                        if (entry_data[101]) begin
                            if (count_reg == PENDING_FULL)
                                dropped_reg <= dropped_reg + 1'b1;
                            else
                                count_reg <= count_reg + 1'b1;
                        end
                        if (entry_data[102] || entry_data[103]) begin
                            final_reg <= entry_data[103];
                            state_reg <= S_SELECT;
                            scan_issue_reg <= '0;
                            scan_data_valid_reg <= 1'b0;
                            found_reg <= 1'b0;
                        end
                    end
                end
                S_SELECT: begin
                    if (scan_data_valid_reg && eligible && precedes_found) begin
                        found_reg <= 1'b1;
                        chosen_index_reg <= scan_data_index_reg;
                        chosen_sample_reg <= entry_sample;
                        chosen_channel_reg <= entry_channel;
                        chosen_amplitude_reg <= entry_amplitude;
                    end
                    if (scan_done) begin
                        scan_issue_reg <= '0;
                        if (found_reg) begin
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
                    if (scan_data_valid_reg && needed)
                        kept_reg <= kept_reg + 1'b1;
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
