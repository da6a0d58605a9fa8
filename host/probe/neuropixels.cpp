#include "probe/neuropixels.hpp"

#include <array>
#include <charconv>
#include <string_view>

namespace spikeline::probe {

namespace {

/// One family of the SpikeGLX part-number table: the part numbers (NPxxxx) and the probe type it reports.
struct Family {
    std::array<int, 10> part_numbers; ///< NP part numbers, zero-padded
    int probe_type;
    NeuropixelsModel model;
};

NeuropixelsModel make(std::string family, int columns, double x_even, double x_odd, double column_pitch,
                      double row_pitch, int shanks, double shank_pitch, int max_int, double range, double fixed_gain,
                      ImroFormat imro) {
    NeuropixelsModel model;
    model.family = std::move(family);
    model.columns = columns;
    model.x_even_um = x_even;
    model.x_odd_um = x_odd;
    model.column_pitch_um = column_pitch;
    model.row_pitch_um = row_pitch;
    model.shanks = shanks;
    model.shank_pitch_um = shank_pitch;
    model.max_int = max_int;
    model.range_volts = range;
    model.fixed_gain = fixed_gain;
    model.imro = imro;
    return model;
}

// Values from SpikeGLX's metadata help and probe tables: NP1.0-based probes digitise 10 bits (+-512) over +-0.6 V
// with gains chosen per channel in ~imroTbl; the first NP2.0 probes (types 21, 24) 14 bits over +-0.5 V at a fixed
// gain of 80; commercial NP2.0 (2003, 2013, 2020 families) 12 bits over +-0.62 V at a fixed gain of 100.
const std::array<Family, 19>& families() {
    using F = ImroFormat;
    static const std::array<Family, 19> table{{
        {{1000, 1001, 1010, 1011, 1012, 1013, 1014},
         0,
         make("NP1.0 staggered", 2, 27, 11, 32, 20, 1, 0, 512, 0.6, 0, F::np1)},
        {{1015, 1016, 1017}, 0, make("NP1.0 NHP short linear", 2, 27, 27, 32, 20, 1, 0, 512, 0.6, 0, F::np1)},
        {{1020, 1021}, 1020, make("NHP 25 mm staggered", 2, 27, 11, 87, 20, 1, 0, 512, 0.6, 0, F::np1)},
        {{1022}, 1020, make("NHP 25 mm linear", 2, 11, 11, 103, 20, 1, 0, 512, 0.6, 0, F::np1)},
        {{1030, 1031}, 1030, make("NHP 45 mm staggered", 2, 27, 11, 87, 20, 1, 0, 512, 0.6, 0, F::np1)},
        {{1032, 1033, 1040, 1041, 1042, 1050, 1051},
         1030,
         make("NHP 45 mm linear", 2, 11, 11, 103, 20, 1, 0, 512, 0.6, 0, F::np1)},
        {{1100}, 1100, make("NP Ultra (UHD phase 1)", 8, 14, 14, 6, 6, 1, 0, 512, 0.6, 0, F::np1)},
        {{1110}, 1110, make("UHD phase 2 (NP1110)", 8, 15.5, 15.5, 6, 6, 1, 0, 512, 0.6, 0, F::not_readable)},
        {{1120}, 1120, make("UHD phase 3 2x192", 2, 6.75, 6.75, 4.5, 4.5, 1, 0, 512, 0.6, 0, F::not_readable)},
        {{1121}, 1121, make("UHD phase 3 1x384", 1, 6.25, 6.25, 3, 3, 1, 0, 512, 0.6, 0, F::not_readable)},
        {{1122}, 1122, make("UHD phase 3 16x24", 16, 12.5, 12.5, 3, 3, 1, 0, 512, 0.6, 0, F::not_readable)},
        {{1123}, 1123, make("UHD phase 3 12x32", 12, 10.25, 10.25, 4.5, 4.5, 1, 0, 512, 0.6, 0, F::not_readable)},
        {{1300, 1400}, 1300, make("Opto linear", 2, 11, 11, 48, 20, 1, 0, 512, 0.6, 0, F::np1)},
        {{2000}, 21, make("NP2.0 single shank (type 21)", 2, 27, 27, 32, 15, 1, 0, 8192, 0.5, 80, F::np2_single)},
        {{2010}, 24, make("NP2.0 4-shank (type 24)", 2, 27, 27, 32, 15, 4, 250, 8192, 0.5, 80, F::np2_multi)},
        {{2003, 2004, 2005}, 2003, make("NP2.0 single shank", 2, 27, 27, 32, 15, 1, 0, 2048, 0.62, 100, F::np2_single)},
        {{2006},
         2003,
         make("NP2.0 NHP single shank staggered", 2, 27, 11, 32, 15, 1, 0, 2048, 0.62, 100, F::np2_single)},
        {{2013, 2014}, 2013, make("NP2.0 4-shank", 2, 27, 27, 32, 15, 4, 250, 2048, 0.62, 100, F::np2_multi)},
        {{2020, 2021}, 2020, make("NP2.0 quad-base 4-shank", 2, 27, 27, 32, 15, 4, 250, 2048, 0.62, 100, F::np2_multi)},
    }};
    return table;
}

std::optional<int> np_number(std::string_view part_number) {
    if (part_number.size() < 3 || part_number.substr(0, 2) != "NP")
        return std::nullopt;
    int number = 0;
    const char* begin = part_number.data() + 2;
    const char* end = part_number.data() + part_number.size();
    const auto [stop, ec] = std::from_chars(begin, end, number);
    if (ec != std::errc() || stop != end)
        return std::nullopt;
    return number;
}

const Family* by_type(int probe_type) {
    for (const Family& family : families())
        if (family.probe_type == probe_type)
            return &family;
    return nullptr;
}

} // namespace

std::optional<NeuropixelsModel> neuropixels_model(const std::string& part_number, std::optional<int> probe_type) {
    const std::string_view pn = part_number;
    // Part numbers before the NPxxxx scheme.
    if (pn.starts_with("PRB_1_4") || pn.starts_with("PRB_1_2"))
        return by_type(0)->model;
    if (pn.starts_with("PRB2_1"))
        return by_type(21)->model;
    if (pn.starts_with("PRB2_4"))
        return by_type(24)->model;
    if (const auto number = np_number(pn)) {
        for (const Family& family : families())
            for (const int listed : family.part_numbers)
                if (listed != 0 && listed == *number)
                    return family.model;
        return std::nullopt; // a part this table does not know: its layout is not guessed from the type
    }
    if (probe_type) {
        const Family* family = by_type(*probe_type);
        return family ? std::optional(family->model) : std::nullopt;
    }
    if (pn.empty()) { // phase 3A and early 3B metadata state neither: those probes have the NP1.0 layout
        NeuropixelsModel model = by_type(0)->model;
        model.family = "NP1.0 staggered (phase 3A/3B)";
        return model;
    }
    return std::nullopt;
}

} // namespace spikeline::probe
