// Synchronous FIFO with a combinational head (first-word fall-through), used between the detector and the
// de-duplication FSM and in front of the event stream. `clear` empties it at the start of a stream.
`default_nettype none

module spikeline_fifo #(
    parameter int WIDTH = 32,
    parameter int DEPTH = 16,
    parameter int ADDR_BITS = $clog2(DEPTH)
) (
    input  wire logic               clk,
    input  wire logic               rst,
    input  wire logic               clear,
    input  wire logic               push,
    input  wire logic [WIDTH-1:0]   push_data,
    input  wire logic               pop,
    output logic      [WIDTH-1:0]   head,
    output logic                    empty,
    output logic                    full,
    output logic      [ADDR_BITS:0] count
);
    logic [WIDTH-1:0] memory [0:DEPTH-1];
    logic [ADDR_BITS-1:0] write_pointer_reg, read_pointer_reg;
    logic [ADDR_BITS:0] count_reg;

    // DEPTH is a power of two, so the pointers wrap by themselves.
    localparam logic [ADDR_BITS:0] FULL_COUNT = (ADDR_BITS + 1)'(DEPTH);
    wire do_push = push && count_reg != FULL_COUNT;
    wire do_pop = pop && count_reg != 0;

    assign head = memory[read_pointer_reg];
    assign empty = count_reg == 0;
    assign full = count_reg == FULL_COUNT;
    assign count = count_reg;

    always_ff @(posedge clk) begin
        if (do_push)
            memory[write_pointer_reg] <= push_data;
    end

    always_ff @(posedge clk) begin
        if (rst || clear) begin
            write_pointer_reg <= '0;
            read_pointer_reg <= '0;
            count_reg <= '0;
        end else begin
            if (do_push)
                write_pointer_reg <= write_pointer_reg + 1'b1;
            if (do_pop)
                read_pointer_reg <= read_pointer_reg + 1'b1;
            count_reg <= count_reg + (ADDR_BITS + 1)'(do_push) - (ADDR_BITS + 1)'(do_pop);
        end
    end
endmodule

`default_nettype wire
