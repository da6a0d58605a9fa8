// Synchronous FIFO over a simple dual-port RAM with a registered read, so that deep or wide queues map to block RAM
// or URAM (spikeline_fifo's combinational head would become LUTs). The head is shown one clock after a pop and two
// clocks after a push into an empty FIFO: `visible` counts the entries whose data the RAM's read port has caught up
// with, `full` counts every entry pushed. `clear` empties it.
`default_nettype none

module spikeline_sync_fifo #(
    parameter int WIDTH = 32,
    parameter int DEPTH = 1024,
    parameter int ADDR_BITS = $clog2(DEPTH)
) (
    input  wire logic               clk,
    input  wire logic               rst,
    input  wire logic               clear,
    input  wire logic               push,
    input  wire logic [WIDTH-1:0]   push_data,
    input  wire logic               pop,          // only while head_valid
    output logic      [WIDTH-1:0]   head,
    output logic                    head_valid,
    output logic                    full,
    output logic      [ADDR_BITS:0] count         // entries pushed and not popped
);
    localparam logic [ADDR_BITS:0] FULL_COUNT = (ADDR_BITS + 1)'(DEPTH);

    logic [ADDR_BITS-1:0] write_pointer_reg, read_pointer_reg;
    logic [ADDR_BITS:0] count_reg, visible_reg;
    logic pushed_reg; // a push one clock ago: its data is readable from now on

    wire do_push = push && count_reg != FULL_COUNT;
    wire do_pop = pop && visible_reg != 0;
    // DEPTH is a power of two, so the pointers wrap by themselves.
    wire [ADDR_BITS-1:0] read_address = do_pop ? read_pointer_reg + 1'b1 : read_pointer_reg;

    spikeline_sdp_ram #(
        .WIDTH(WIDTH),
        .DEPTH(DEPTH)
    ) ram (
        .clk(clk),
        .write_enable(do_push),
        .write_address(write_pointer_reg),
        .write_data(push_data),
        .read_address(read_address),
        .read_data(head)
    );

    assign head_valid = visible_reg != 0;
    assign full = count_reg == FULL_COUNT;
    assign count = count_reg;

    always_ff @(posedge clk) begin
        if (rst || clear) begin
            write_pointer_reg <= '0;
            read_pointer_reg <= '0;
            count_reg <= '0;
            visible_reg <= '0;
            pushed_reg <= 1'b0;
        end else begin
            pushed_reg <= do_push;
            if (do_push)
                write_pointer_reg <= write_pointer_reg + 1'b1;
            if (do_pop)
                read_pointer_reg <= read_pointer_reg + 1'b1;
            count_reg <= count_reg + (ADDR_BITS + 1)'(do_push) - (ADDR_BITS + 1)'(do_pop);
            visible_reg <= visible_reg + (ADDR_BITS + 1)'(pushed_reg) - (ADDR_BITS + 1)'(do_pop);
        end
    end
endmodule

`default_nettype wire
