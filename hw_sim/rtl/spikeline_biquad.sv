// One direct-form-I biquad step of L1's biquad_step (bandpass.hpp), over two clocks:
//   y = saturate26(round_half_up((gain * (x0 + MIDDLE * x1 + x2) - a1 * y1 - a2 * y2) / 2^14))
// Coefficients are signed Q2.14 in 16 bits: the feedback products are 16 x 26 bits, one DSP48E2 (27 x 18) each with
// its multiplier register; the gain product (numerator up to 28 bits) takes two. The sum, rounding and saturation
// follow in the next clock: y0 is the result for the inputs of the previous clock.
// MIDDLE is -2 (high-pass) or +2 (low-pass): the Butterworth numerators are gain * (1, MIDDLE, 1).
// The accumulator is 48 bits wide; L1 bounds it below 2^43, so no intermediate overflows.
`default_nettype none

module spikeline_biquad #(
    parameter int MIDDLE = -2
) (
    input  wire logic               clk,
    input  wire logic signed [25:0] x0,
    input  wire logic signed [25:0] x1,
    input  wire logic signed [25:0] x2,
    input  wire logic signed [25:0] y1,
    input  wire logic signed [25:0] y2,
    input  wire logic signed [15:0] gain,
    input  wire logic signed [15:0] a1,
    input  wire logic signed [15:0] a2,
    output logic      signed [25:0] y0
);
    localparam logic signed [47:0] STATE_MAX = (48'sd1 <<< 25) - 48'sd1;
    localparam logic signed [47:0] STATE_MIN = -(48'sd1 <<< 25);

    logic signed [47:0] numerator, middle_term;
    logic signed [47:0] gain_product_reg, a1_product_reg, a2_product_reg;
    logic signed [47:0] accumulator, rounded;

    always_comb begin
        middle_term = 48'(x1) <<< 1;
        if (MIDDLE < 0)
            middle_term = -middle_term;
        numerator = 48'(x0) + middle_term + 48'(x2);
    end

    always_ff @(posedge clk) begin
        gain_product_reg <= 48'(gain) * numerator;
        a1_product_reg <= 48'(a1) * 48'(y1);
        a2_product_reg <= 48'(a2) * 48'(y2);
    end

    always_comb begin
        accumulator = gain_product_reg - a1_product_reg - a2_product_reg;
        rounded = (accumulator + 48'sd8192) >>> 14;
        if (rounded > STATE_MAX)
            y0 = STATE_MAX[25:0];
        else if (rounded < STATE_MIN)
            y0 = STATE_MIN[25:0];
        else
            y0 = rounded[25:0];
    end
endmodule

`default_nettype wire
