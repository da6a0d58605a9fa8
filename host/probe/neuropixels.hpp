#pragma once
// Documented Neuropixels site layouts and ADC constants, by probe part number (imDatPrb_pn) or probe type
// (imDatPrb_type), as SpikeGLX states them (metadata help, probe part-number tables). A site at hardware column c of
// row r on shank s sits at x = s * shank_pitch + (r odd ? x_odd : x_even) + c * column_pitch, y = r * row_pitch.
#include <optional>
#include <string>

namespace spikeline::probe {

/// How the entries of a SpikeGLX ~imroTbl name the electrode of each channel.
enum class ImroFormat {
    /// (chan bank refid apgain lfgain hpfilt), phase 3A without hpfilt: electrode = bank * 384 + chan; per-channel
    /// gains
    np1,
    np2_single,   ///< (chan bank refid electrode)
    np2_multi,    ///< (chan shank bank refid electrode)
    not_readable, ///< layouts whose electrode follows from groups or column modes (UHD 1110): no electrode here
};

/// One probe family: site layout, ADC full scale and the gain rule for metadata that does not state them.
struct NeuropixelsModel {
    std::string family;    ///< e.g. "NP1.0 staggered", for summaries and errors
    int columns = 2;       ///< hardware columns per row
    double x_even_um = 27; ///< x of column 0 on even rows, from the shank's left edge
    double x_odd_um = 11;  ///< x of column 0 on odd rows
    double column_pitch_um = 32;
    double row_pitch_um = 20;
    double shank_pitch_um = 0; ///< 0: single shank
    int shanks = 1;
    int max_int = 512;        ///< ADC full scale in counts, when imMaxInt is absent
    double range_volts = 0.6; ///< imAiRangeMax, when absent
    double fixed_gain = 0;    ///< the gain when neither ~imroTbl nor imChan0apGain states one; 0: none
    ImroFormat imro = ImroFormat::np1;

    double x_um(int shank, int column, int row) const {
        return shank * shank_pitch_um + ((row % 2) != 0 ? x_odd_um : x_even_um) + column * column_pitch_um;
    }
    double y_um(int row) const { return row * row_pitch_um; }
};

/// The model of a part number (imDatPrb_pn: "NP1000", "PRB_1_4_0480_1_C", "PRB2_4_2_0640_0", ...), else of a probe
/// type (imDatPrb_type); phase 3A/3B metadata without either (part_number empty, type absent) is the NP1.0 layout.
/// Nothing for unknown parts and types.
std::optional<NeuropixelsModel> neuropixels_model(const std::string& part_number, std::optional<int> probe_type);

} // namespace spikeline::probe
