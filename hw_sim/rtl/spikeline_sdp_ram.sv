// Simple dual-port RAM: one synchronous write port, one synchronous read port (read-first), no reset, so that
// Vivado and Yosys infer block RAM (or distributed RAM when small).
`default_nettype none

module spikeline_sdp_ram #(
    parameter int WIDTH = 32,
    parameter int DEPTH = 1024,
    parameter int ADDR_BITS = $clog2(DEPTH)
) (
    input  wire logic                 clk,
    input  wire logic                 write_enable,
    input  wire logic [ADDR_BITS-1:0] write_address,
    input  wire logic [WIDTH-1:0]     write_data,
    input  wire logic [ADDR_BITS-1:0] read_address,
    output logic      [WIDTH-1:0]     read_data
);
    logic [WIDTH-1:0] memory [0:DEPTH-1];

    always_ff @(posedge clk) begin
        if (write_enable)
            memory[write_address] <= write_data;
        read_data <= memory[read_address];
    end
endmodule

`default_nettype wire
