# Packages the RTL kernel spikeline_rtl (hw_sim/rtl/spikeline_rtl.sv and the engine under it) as a Vitis kernel
# object. Run on a machine with Vivado/Vitis (settings64.sh sourced), from any directory:
#   vivado -mode batch -source kernels/rtl/package_xo.tcl -tclargs <xo path> <part> [<work dir>]
#   e.g. -tclargs build_rtl/spikeline_rtl.xo xcu250-figd2104-2L-e build_rtl     (U250)
#        -tclargs build_rtl/spikeline_rtl.xo xcu55c-fsvh2892-2L-e build_rtl     (U55C)
# kernels/rtl/Makefile wraps it (make xo / make xclbin).
if {[llength $argv] < 2} {
    error "usage: vivado -mode batch -source package_xo.tcl -tclargs <xo path> <part> \[<work dir>\]"
}
set xo_path [file normalize [lindex $argv 0]]
set part [lindex $argv 1]
set work [file normalize [expr {[llength $argv] > 2 ? [lindex $argv 2] : "build_rtl"}]]
set here [file normalize [file dirname [info script]]]
set rtl [file normalize "$here/../../hw_sim/rtl"]

# the engine's sources, in dependency order; the top is spikeline_rtl
set sources {}
foreach name {spikeline_sdp_ram spikeline_fifo spikeline_sync_fifo spikeline_biquad spikeline_dedup
              spikeline_detect_core spikeline_sort_stage spikeline_core spikeline_rtl} {
    lappend sources "$rtl/$name.sv"
}

file mkdir $work
create_project -force spikeline_rtl_package "$work/project" -part $part
add_files -norecurse $sources
set_property top spikeline_rtl [current_fileset]
update_compile_order -fileset sources_1

ipx::package_project -root_dir "$work/ip" -vendor spikeline.org -library kernel -taxonomy /KernelIP \
    -import_files -set_current false
ipx::unload_core "$work/ip/component.xml"
ipx::edit_ip_in_project -upgrade true -name spikeline_rtl_edit -directory "$work/edit" "$work/ip/component.xml"
set core [ipx::current_core]
set_property core_revision 1 $core
set_property sdx_kernel true $core
set_property sdx_kernel_type rtl $core
set_property ipi_drc {ignore_freq_hz true} $core
set_property vitis_drc {ctrl_protocol ap_ctrl_hs} $core

# every bus interface on ap_clk, reset ap_rst_n (active low)
ipx::associate_bus_interfaces -busif s_axi_control -clock ap_clk $core
ipx::associate_bus_interfaces -busif m_axi_gmem_in -clock ap_clk $core
ipx::associate_bus_interfaces -busif m_axi_gmem_out -clock ap_clk $core
ipx::associate_bus_interfaces -clock ap_clk -reset ap_rst_n $core
set reset [ipx::get_bus_interfaces ap_rst_n -of_objects $core]
set_property value ACTIVE_LOW [ipx::add_bus_parameter POLARITY $reset]
ipx::infer_bus_interface interrupt xilinx.com:signal:interrupt_rtl:1.0 $core
set_property value LEVEL_HIGH [ipx::add_bus_parameter SENSITIVITY [ipx::get_bus_interfaces interrupt -of_objects $core]]

# the control registers XRT writes (kernel_abi.hpp kArgOffsets), so that Vivado's checks see the argument map
set control_map [ipx::add_memory_map s_axi_control $core]
set_property slave_memory_map_ref s_axi_control [ipx::get_bus_interfaces s_axi_control -of_objects $core]
set block [ipx::add_address_block reg0 $control_map]
set_property range 0x1000 $block
foreach {name offset size} {CTRL 0x00 32 GIER 0x04 32 IP_IER 0x08 32 IP_ISR 0x0C 32
                            frames 0x10 64 n_frames 0x1C 32 program 0x24 64 n_program_writes 0x30 32
                            output 0x38 64 max_records 0x44 32 control 0x4C 32 state 0x54 64} {
    set register [ipx::add_register $name $block]
    set_property address_offset $offset $register
    set_property size $size $register
}
foreach {name port} {frames m_axi_gmem_in program m_axi_gmem_in state m_axi_gmem_in output m_axi_gmem_out} {
    set reference [ipx::add_register_parameter ASSOCIATED_BUSIF [ipx::get_registers $name -of_objects $block]]
    set_property value $port $reference
}

ipx::create_xgui_files $core
ipx::update_checksums $core
ipx::check_integrity -kernel $core
ipx::save_core $core
close_project -delete

if {[file exists $xo_path]} {
    file delete -force $xo_path
}
file mkdir [file dirname $xo_path]
package_xo -xo_path $xo_path -kernel_name spikeline_rtl -ip_directory "$work/ip" -kernel_xml "$here/kernel.xml"
