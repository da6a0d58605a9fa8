#!/usr/bin/env bash
# Resource estimate of the RTL engine (hw_sim/rtl/spikeline_core.sv: detection core + sorting stage): Yosys
# synth_xilinx for UltraScale+ (xcup, URAM inference on), then the LUT, FF, DSP, block RAM and URAM counts, their
# share of an Alveo U250 (1,728k LUTs, 3,456k FFs, 12,288 DSPs, 2,688 BRAM36, 1,280 URAM) and per channel, for the
# detection core alone and for the whole engine (the difference is the sorting stage), and the longest
# combinational path in logic levels.
#
# Technology assumption for the path: Yosys does no timing analysis, so `ltp` finds the longest chain of logic cells
# (LUT1..6, CARRY8, MUXF7/8/9) between registers, block RAM, URAM and DSP pins, which end paths (their registered
# outputs are used everywhere here). On UltraScale+ (-2) a LUT level costs about 0.4-0.5 ns with local routing, a
# CARRY8 less, so L cells take roughly 0.4 L to 0.5 L ns. Vivado would give the real figure.
#
# usage: scripts/synth_estimate.sh [CHANNELS (default 1024)] [OUTPUT_DIR (default build-synth)] [TOPS]
#        TOPS: "spikeline_detect_core spikeline_core" (default) or either one, or spikeline_rtl (the XRT RTL kernel
#        around spikeline_core)
set -euo pipefail

channels="${1:-1024}"
out_dir="${2:-build-synth}"
tops="${3:-spikeline_detect_core spikeline_core}"
root="$(cd "$(dirname "$0")/.." && pwd)"
rtl="$root/hw_sim/rtl"
mkdir -p "$out_dir"

command -v yosys > /dev/null || { echo "yosys is not installed (scripts/setup.sh installs it)" >&2; exit 1; }

sources="$rtl/spikeline_sdp_ram.sv $rtl/spikeline_fifo.sv $rtl/spikeline_sync_fifo.sv $rtl/spikeline_biquad.sv \
         $rtl/spikeline_dedup.sv $rtl/spikeline_detect_core.sv $rtl/spikeline_sort_stage.sv $rtl/spikeline_core.sv \
         $rtl/spikeline_rtl.sv"

share() { awk -v used="$1" -v total="$2" 'BEGIN { printf "%.3f %%", 100 * used / total }'; }
per_channel() { awk -v used="$1" -v n="$channels" 'BEGIN { printf "%.2f", used / n }'; }

for top in $tops; do
    stat_file="$out_dir/stat_${top}_${channels}.txt"
    path_file="$out_dir/path_${top}_${channels}.txt"
    log_file="$out_dir/yosys_${top}_${channels}.log"
    start=$(date +%s)
    # Yosys' warnings (port resizing of block RAM cells) go to the log; on failure its tail is shown. The path
    # search sees only logic cells: registers, RAMs and DSPs cut it.
    if ! yosys -q -l "$log_file" -p "
        read_verilog -sv $sources
        chparam -set MAX_CHANNELS $channels $top
        synth_xilinx -family xcup -top $top -flatten -uram -noiopad
        tee -q -o $stat_file stat
        tee -q -o $path_file ltp -noff w:* t:LUT* t:CARRY8 t:MUXF*
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
    bram36_equivalent=$(awk -v a="$bram36" -v b="$bram18" 'BEGIN { print a + b / 2 }')
    # ltp lists the path's wires and cells: a cell line has no "[bit]" after its name
    levels=$(awk '/^ *[0-9]+: / { line = $0; sub(/ \(via.*/, "", line); if (line !~ / \[[0-9]+\]$/) n++ }
                  END { print n + 0 }' "$path_file")
    path_start=$(awk '/^ *0: / { print $2; exit }' "$path_file")

    echo "$top, MAX_CHANNELS=$channels, yosys synth_xilinx -family xcup -flatten -uram -noiopad (${seconds} s)"
    printf '%-22s %10s  %-24s %s\n' "resource" "used" "share of an Alveo U250" "per channel"
    printf '%-22s %10s  %-24s %s\n' "LUT (logic)" "$luts" "$(share "$luts" 1728000)" "$(per_channel "$luts")"
    printf '%-22s %10s  %-24s %s\n' "LUT as RAM (cells)" "$lutram" "-" "$(per_channel "$lutram")"
    printf '%-22s %10s  %-24s %s\n' "FF" "$ffs" "$(share "$ffs" 3456000)" "$(per_channel "$ffs")"
    printf '%-22s %10s  %-24s %s\n' "DSP48E2" "$dsps" "$(share "$dsps" 12288)" "$(per_channel "$dsps")"
    printf '%-22s %10s  %-24s %s\n' "RAMB36E2" "$bram36" "-" "-"
    printf '%-22s %10s  %-24s %s\n' "RAMB18E2" "$bram18" "-" "-"
    printf '%-22s %10s  %-24s %s\n' "BRAM36 equivalent" "$bram36_equivalent" "$(share "$bram36_equivalent" 2688)" \
        "$(per_channel "$bram36_equivalent")"
    printf '%-22s %10s  %-24s %s\n' "URAM288" "$uram" "$(share "$uram" 1280)" "$(per_channel "$uram")"
    echo "longest combinational path: $levels logic cells (LUT/CARRY8/MUXF), from $path_start"
    echo "  (UltraScale+ -2 at 0.4-0.5 ns per cell: $(awk -v l="$levels" \
        'BEGIN { printf "%.1f-%.1f ns, about %.0f-%.0f MHz", 0.4 * l, 0.5 * l, 1000 / (0.5 * l), 1000 / (0.4 * l) }');" \
        "Vivado gives the real figure)"
    echo "cell counts: $stat_file, path: $path_file"
done
