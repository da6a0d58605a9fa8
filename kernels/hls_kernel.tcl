# Vitis HLS flow for one kernel of the kernel_abi.hpp layout, KERNEL=detect (spikeline_detect) or KERNEL=sort
# (spikeline_sort): C simulation against hls_$KERNEL_tb.cpp, synthesis, RTL co-simulation with the same test bench,
# and the .xo for v++ -l.
#   KERNEL=detect vitis_hls -f hls_kernel.tcl   (from kernels/, or 'make hls_detect'; PART defaults to the U250's
#                                                device, e.g. PART=xcu55c-fsvh2892-2L-e)
# The on-chip engine is a local of the top (100 KB for detect, 4.3 MB for sort in C simulation): 'ulimit -s unlimited'
# first if csim stops with a segmentation fault.
if {![info exists ::env(KERNEL)] || [lsearch -exact {detect sort} $::env(KERNEL)] < 0} {
    puts "set KERNEL=detect or KERNEL=sort"
    exit 1
}
set kernel spikeline_$::env(KERNEL)
set part [expr {[info exists ::env(PART)] ? $::env(PART) : "xcu250-figd2104-2L-e"}]
open_project -reset ${kernel}_hls
set_top $kernel
add_files $kernel.cpp -cflags "-I../hls/include -I. -std=c++14"
add_files -tb hls_$::env(KERNEL)_tb.cpp -cflags "-I../hls/include -I. -std=c++14"
open_solution -reset solution -flow_target vitis
set_part $part
create_clock -period 3.33 -name default ;# 300 MHz: the Alveo platforms' default kernel clock
csim_design
csynth_design
cosim_design
export_design -format xo -output $kernel.xo
exit
