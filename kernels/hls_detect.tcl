# Vitis HLS flow for spikeline_detect (kernel_abi.hpp layout): C simulation against hls_detect_tb.cpp, synthesis, RTL
# co-simulation with the same test bench, and the .xo for v++ -l.
#   vitis_hls -f hls_detect.tcl        (from kernels/; PART defaults to the U250's device, e.g. PART=xcu55c-fsvh2892-2L-e)
# The on-chip engine is a local of the top (100 KB in C simulation): 'ulimit -s unlimited' first if csim stops with a
# segmentation fault.
set part [expr {[info exists ::env(PART)] ? $::env(PART) : "xcu250-figd2104-2L-e"}]
open_project -reset spikeline_detect_hls
set_top spikeline_detect
add_files spikeline_detect.cpp -cflags "-I../hls/include -I. -std=c++14"
add_files -tb hls_detect_tb.cpp -cflags "-I../hls/include -I. -std=c++14"
open_solution -reset solution -flow_target vitis
set_part $part
create_clock -period 3.33 -name default ;# 300 MHz: the Alveo platforms' default kernel clock
csim_design
csynth_design
cosim_design
export_design -format xo -output spikeline_detect.xo
exit
