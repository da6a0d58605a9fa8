#!/usr/bin/env bash
# Resource estimate of the RTL detection core: Yosys synth_xilinx for UltraScale+ (xcup), then the LUT, FF, DSP
# and block RAM counts and their share of an Alveo U250 (1,728k LUTs, 3,456k FFs, 12,288 DSPs, 2,688 BRAM36,
# 1,280 URAM). Yosys does no timing analysis: see docs/PERFORMANCE.md for what limits the clock.
#
# usage: scripts/synth_estimate.sh [CHANNELS (default 1024)] [OUTPUT_DIR (default build-synth)]
set -euo pipefail

channels="${1:-1024}"
out_dir="${2:-build-synth}"
root="$(cd "$(dirname "$0")/.." && pwd)"
rtl="$root/hw_sim/rtl"
mkdir -p "$out_dir"
stat_file="$out_dir/stat_${channels}.txt"
log_file="$out_dir/yosys_${channels}.log"

command -v yosys > /dev/null || { echo "yosys is not installed (scripts/setup.sh installs it)" >&2; exit 1; }

start=$(date +%s)
# Yosys' warnings (port resizing of block RAM cells) go to the log; on failure its tail is shown.
if ! yosys -q -l "$log_file" -p "
    read_verilog -sv $rtl/spikeline_sdp_ram.sv $rtl/spikeline_fifo.sv $rtl/spikeline_biquad.sv \
                     $rtl/spikeline_dedup.sv $rtl/spikeline_detect_core.sv
    chparam -set MAX_CHANNELS $channels spikeline_detect_core
    synth_xilinx -family xcup -top spikeline_detect_core -flatten
    tee -q -o $stat_file stat
" > /dev/null 2>&1; then
    tail -n 30 "$log_file" >&2
    exit 1
fi
seconds=$(( $(date +%s) - start ))

# Sums the counts of the cells whose name matches a pattern in Yosys' stat output.
count() {
    awk -v pattern="$1" '$1 ~ pattern && $2 ~ /^[0-9]+$/ { total += $2 } END { print total + 0 }' "$stat_file"
}
luts=$(count '^(LUT[1-6]|LUT6_2)$')
lutram=$(count '^(RAM[0-9]+[MSX]|RAM[0-9]+X1[SD]|RAM32M16|RAM64M8)')
ffs=$(count '^FD[CPRSE]+$')
dsps=$(count '^DSP48E2$')
bram36=$(count '^RAMB36E2$')
bram18=$(count '^RAMB18E2$')
uram=$(count '^URAM288$')

share() { awk -v used="$1" -v total="$2" 'BEGIN { printf "%.3f %%", 100 * used / total }'; }
bram36_equivalent=$(awk -v a="$bram36" -v b="$bram18" 'BEGIN { print a + b / 2 }')

echo "spikeline_detect_core, MAX_CHANNELS=$channels, yosys synth_xilinx -family xcup (${seconds} s)"
printf '%-22s %10s  %s\n' "resource" "used" "share of an Alveo U250"
printf '%-22s %10s  %s\n' "LUT (logic)" "$luts" "$(share "$luts" 1728000)"
printf '%-22s %10s  %s\n' "LUT as RAM (cells)" "$lutram" "-"
printf '%-22s %10s  %s\n' "FF" "$ffs" "$(share "$ffs" 3456000)"
printf '%-22s %10s  %s\n' "DSP48E2" "$dsps" "$(share "$dsps" 12288)"
printf '%-22s %10s  %s\n' "RAMB36E2" "$bram36" "-"
printf '%-22s %10s  %s\n' "RAMB18E2" "$bram18" "-"
printf '%-22s %10s  %s\n' "BRAM36 equivalent" "$bram36_equivalent" "$(share "$bram36_equivalent" 2688)"
printf '%-22s %10s  %s\n' "URAM288" "$uram" "$(share "$uram" 1280)"
echo "cell counts: $stat_file"
