// The whole engine: the detection core (spikeline_detect_core) and the sorting stage behind it
// (spikeline_sort_stage), which takes the core's referenced samples (its monitor port) and a copy of every event it
// sends. One AXI4-Lite port: byte addresses below 0x100000 reach the core's registers unchanged, from 0x100000 the
// stage's (hw_sim/README.md). The detection events still leave on m_axis; sorted spikes and their snippets on
// m_axis_spike and m_axis_snippet.
`default_nettype none

module spikeline_core #(
    parameter int MAX_CHANNELS = 1024,
    parameter int RING_FRAMES = 256,
    parameter int SORT_EVENT_DEPTH = 1024,
    parameter int WRITE_QUEUE_DEPTH = 16384
) (
    input  wire logic         clk,
    input  wire logic         rst,

    input  wire logic [15:0]  s_axis_tdata,
    input  wire logic         s_axis_tvalid,
    output logic              s_axis_tready,
    input  wire logic         s_axis_tlast,

    output logic [127:0]      m_axis_tdata,
    output logic              m_axis_tvalid,
    input  wire logic         m_axis_tready,
    output logic              m_axis_tlast,

    output logic [959:0]      m_axis_spike_tdata,
    output logic              m_axis_spike_tvalid,
    input  wire logic         m_axis_spike_tready,

    output logic [255:0]      m_axis_snippet_tdata,
    output logic              m_axis_snippet_tvalid,
    input  wire logic         m_axis_snippet_tready,
    output logic              m_axis_snippet_tlast,

    input  wire logic [20:0]  s_axil_awaddr,
    input  wire logic         s_axil_awvalid,
    output logic              s_axil_awready,
    input  wire logic [31:0]  s_axil_wdata,
    input  wire logic [3:0]   s_axil_wstrb,
    input  wire logic         s_axil_wvalid,
    output logic              s_axil_wready,
    output logic [1:0]        s_axil_bresp,
    output logic              s_axil_bvalid,
    input  wire logic         s_axil_bready,
    input  wire logic [20:0]  s_axil_araddr,
    input  wire logic         s_axil_arvalid,
    output logic              s_axil_arready,
    output logic [31:0]       s_axil_rdata,
    output logic [1:0]        s_axil_rresp,
    output logic              s_axil_rvalid,
    input  wire logic         s_axil_rready,

    // Observation only, as the core's
    output logic              monitor_valid,
    output logic [15:0]       monitor_channel,
    output logic [20:0]       monitor_sample
);
    wire write_sort = s_axil_awaddr[20];
    wire read_sort = s_axil_araddr[20];

    logic core_awready, core_wready, core_bvalid, core_arready, core_rvalid;
    logic [1:0] core_bresp, core_rresp;
    logic [31:0] core_rdata;

    spikeline_detect_core #(
        .MAX_CHANNELS(MAX_CHANNELS)
    ) detect (
        .clk(clk),
        .rst(rst),
        .s_axis_tdata(s_axis_tdata),
        .s_axis_tvalid(s_axis_tvalid),
        .s_axis_tready(s_axis_tready),
        .s_axis_tlast(s_axis_tlast),
        .m_axis_tdata(m_axis_tdata),
        .m_axis_tvalid(m_axis_tvalid),
        .m_axis_tready(m_axis_tready),
        .m_axis_tlast(m_axis_tlast),
        .s_axil_awaddr(s_axil_awaddr[19:0]),
        .s_axil_awvalid(s_axil_awvalid && !write_sort),
        .s_axil_awready(core_awready),
        .s_axil_wdata(s_axil_wdata),
        .s_axil_wstrb(s_axil_wstrb),
        .s_axil_wvalid(s_axil_wvalid && !write_sort),
        .s_axil_wready(core_wready),
        .s_axil_bresp(core_bresp),
        .s_axil_bvalid(core_bvalid),
        .s_axil_bready(s_axil_bready),
        .s_axil_araddr(s_axil_araddr[19:0]),
        .s_axil_arvalid(s_axil_arvalid && !read_sort),
        .s_axil_arready(core_arready),
        .s_axil_rdata(core_rdata),
        .s_axil_rresp(core_rresp),
        .s_axil_rvalid(core_rvalid),
        .s_axil_rready(s_axil_rready),
        .monitor_valid(monitor_valid),
        .monitor_channel(monitor_channel),
        .monitor_sample(monitor_sample)
    );

    // The stage's registers: a write is taken when address and data are both valid, a read answers the next clock.
    logic sort_bvalid_reg, sort_rvalid_reg;
    logic [31:0] sort_rdata_reg, sort_read_data;
    wire sort_write = s_axil_awvalid && s_axil_wvalid && write_sort && !sort_bvalid_reg && !core_bvalid;
    wire sort_read = s_axil_arvalid && read_sort && !sort_rvalid_reg && !core_rvalid;
    // the core's START also starts the stage's stream (frame count, queues)
    wire core_start = s_axil_awvalid && s_axil_wvalid && !write_sort && core_awready &&
                      s_axil_awaddr[19:0] == 20'd0 && s_axil_wdata[0];

    spikeline_sort_stage #(
        .MAX_CHANNELS(MAX_CHANNELS),
        .RING_FRAMES(RING_FRAMES),
        .EVENT_FIFO_DEPTH(SORT_EVENT_DEPTH),
        .WRITE_QUEUE_DEPTH(WRITE_QUEUE_DEPTH)
    ) sort (
        .clk(clk),
        .rst(rst),
        .stream_start(core_start),
        .reg_write(sort_write),
        .reg_write_address(s_axil_awaddr[19:0]),
        .reg_write_data(s_axil_wdata),
        .reg_read_address(s_axil_araddr[19:0]),
        .reg_read_data(sort_read_data),
        .monitor_valid(monitor_valid),
        .monitor_channel(monitor_channel),
        .monitor_sample(monitor_sample),
        .event_valid(m_axis_tvalid && m_axis_tready && !m_axis_tdata[80]), // bit 80: an artefact, not a spike
        .event_data({m_axis_tdata[116:96], m_axis_tdata[79:64], m_axis_tdata[63:0]}),
        .m_axis_spike_tdata(m_axis_spike_tdata),
        .m_axis_spike_tvalid(m_axis_spike_tvalid),
        .m_axis_spike_tready(m_axis_spike_tready),
        .m_axis_snippet_tdata(m_axis_snippet_tdata),
        .m_axis_snippet_tvalid(m_axis_snippet_tvalid),
        .m_axis_snippet_tready(m_axis_snippet_tready),
        .m_axis_snippet_tlast(m_axis_snippet_tlast)
    );

    always_ff @(posedge clk) begin
        if (rst) begin
            sort_bvalid_reg <= 1'b0;
            sort_rvalid_reg <= 1'b0;
            sort_rdata_reg <= '0;
        end else begin
            if (sort_write)
                sort_bvalid_reg <= 1'b1;
            else if (s_axil_bready)
                sort_bvalid_reg <= 1'b0;
            if (sort_read) begin
                sort_rvalid_reg <= 1'b1;
                sort_rdata_reg <= sort_read_data;
            end else if (s_axil_rready) begin
                sort_rvalid_reg <= 1'b0;
            end
        end
    end

    assign s_axil_awready = write_sort ? sort_write : core_awready;
    assign s_axil_wready = write_sort ? sort_write : core_wready;
    assign s_axil_bvalid = core_bvalid || sort_bvalid_reg;
    assign s_axil_bresp = sort_bvalid_reg ? 2'b00 : core_bresp;
    assign s_axil_arready = read_sort ? sort_read : core_arready;
    assign s_axil_rvalid = core_rvalid || sort_rvalid_reg;
    assign s_axil_rdata = sort_rvalid_reg ? sort_rdata_reg : core_rdata;
    assign s_axil_rresp = sort_rvalid_reg ? 2'b00 : core_rresp;
endmodule

`default_nettype wire
