// spikeline info: what spikeline makes of a recording (channels, gain, geometry and where each came from), as text,
// as JSON (--json) and as a picture of the probe (--svg). Reads the metadata only, never the samples.
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "io/recording.hpp"
#include "pipeline/detect_run.hpp"
#include "util/atomic_file.hpp"
#include "util/channel_list.hpp"
#include "util/errors.hpp"

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

namespace spikeline::cli {

namespace po = boost::program_options;

namespace {

/// What `info` reports beyond RecordingInfo: the probe a run would use and the channels it would leave out.
struct InfoReport {
    std::string input;
    std::optional<probe::Probe> probe; ///< empty when no probe fits the recording
    std::string geometry_source;       ///< where the probe came from, or why there is none
    bool geometry_fallback = false;    ///< the built-in default layout, not the recording's own geometry
    std::vector<int> excluded;         ///< --exclude-channels and contacts the probe marks excluded, ascending
};

/// Contacts per shank, in shank order.
std::map<int, int> contacts_per_shank(const probe::Probe& probe) {
    std::map<int, int> counts;
    for (const probe::Contact& contact : probe.contacts)
        ++counts[contact.shank];
    return counts;
}

std::string format_number(double value) {
    std::ostringstream out;
    out << value;
    return out.str();
}

void print_text(const io::RecordingInfo& info, const InfoReport& report) {
    const double seconds = info.sample_rate > 0 ? static_cast<double>(info.n_frames) / info.sample_rate : 0.0;
    std::printf("spikeline info\n");
    std::printf("  input        %s\n", report.input.c_str());
    std::printf("  format       %s\n", info.format.c_str());
    if (!info.data_path.empty())
        std::printf("  data file    %s\n", info.data_path.string().c_str());
    std::printf("  channels     %d neural of %d in the file\n", info.n_channels, info.file_channels());
    for (const auto& [channel, why] : info.skipped_channels)
        std::printf("  skipped      file channel %d: %s\n", channel, why.c_str());
    std::printf("  sample rate  %s Hz\n", format_number(info.sample_rate).c_str());
    std::printf("  duration     %.3f s (%llu frames)\n", seconds, static_cast<unsigned long long>(info.n_frames));
    if (info.microvolts_per_bit > 0)
        std::printf("  gain         %s uV per bit (%s)%s\n", format_number(info.microvolts_per_bit).c_str(),
                    info.gain_source.empty() ? "stated by the metadata" : info.gain_source.c_str(),
                    info.gain_fallback ? " FALLBACK" : "");
    else
        std::printf("  gain         unknown: amplitudes stay in bits (%s)\n",
                    info.gain_source.empty() ? "the metadata states none; pass --uv-per-bit"
                                             : info.gain_source.c_str());
    if (report.probe) {
        std::printf("  probe        %s\n", report.probe->name.empty() ? "(unnamed)" : report.probe->name.c_str());
        std::printf("  geometry     %s%s\n", report.geometry_source.c_str(),
                    report.geometry_fallback ? " FALLBACK" : "");
        const std::map<int, int> shanks = contacts_per_shank(*report.probe);
        std::string per_shank;
        for (const auto& [shank, count] : shanks)
            per_shank += (per_shank.empty() ? "" : ", ") + std::to_string(count) + " on shank " + std::to_string(shank);
        std::printf("  shanks       %zu (%s)\n", shanks.size(), per_shank.c_str());
    } else {
        std::printf("  geometry     none usable: %s\n", report.geometry_source.c_str());
    }
    if (!report.excluded.empty()) {
        std::string list;
        for (int channel : report.excluded)
            list += (list.empty() ? "" : ",") + std::to_string(channel);
        std::printf("  excluded     %zu channel(s): %s\n", report.excluded.size(), list.c_str());
    }
    if (!info.warning.empty())
        std::printf("  warning      %s\n", info.warning.c_str());
}

nlohmann::json to_json(const io::RecordingInfo& info, const InfoReport& report) {
    nlohmann::json skipped = nlohmann::json::array();
    for (const auto& [channel, why] : info.skipped_channels)
        skipped.push_back({{"file_channel", channel}, {"why", why}});
    // Delivered channel c is file channel c: readers skip only channels after the neural ones.
    nlohmann::json channels = nlohmann::json::array();
    for (int c = 0; c < info.n_channels; ++c) {
        nlohmann::json channel = {{"channel", c},
                                  {"file_channel", c},
                                  {"microvolts_per_bit", info.microvolts_per_bit},
                                  {"excluded", std::binary_search(report.excluded.begin(), report.excluded.end(), c)}};
        if (report.probe) {
            const probe::Contact& contact = report.probe->contacts[static_cast<std::size_t>(c)];
            channel["x_um"] = contact.x_um;
            channel["y_um"] = contact.y_um;
            channel["shank"] = contact.shank;
            channel["contact_id"] = contact.id;
        }
        channels.push_back(channel);
    }
    nlohmann::json probe = nullptr;
    if (report.probe) {
        nlohmann::json shanks = nlohmann::json::array();
        for (const auto& [shank, count] : contacts_per_shank(*report.probe))
            shanks.push_back({{"shank", shank}, {"contacts", count}});
        probe = {{"name", report.probe->name}, {"shanks", shanks}};
    }
    return {{"input", report.input},
            {"format", info.format},
            {"data_file", info.data_path.string()},
            {"file_channels", info.file_channels()},
            {"neural_channels", info.n_channels},
            {"skipped_channels", skipped},
            {"sample_rate", info.sample_rate},
            {"frames", info.n_frames},
            {"duration_s", info.sample_rate > 0 ? static_cast<double>(info.n_frames) / info.sample_rate : 0.0},
            {"microvolts_per_bit", info.microvolts_per_bit},
            {"gain_source", info.gain_source},
            {"gain_fallback", info.gain_fallback || info.microvolts_per_bit <= 0},
            {"probe", probe},
            {"geometry_source", report.geometry_source},
            {"geometry_fallback", report.geometry_fallback || !report.probe},
            {"excluded_channels", report.excluded},
            {"channels", channels},
            {"warning", info.warning}};
}

std::string escape_xml(const std::string& text) {
    std::string out;
    for (char c : text) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

/// The probe seen from the front, tip down: a square per contact coloured by shank, excluded contacts hollow and
/// crossed in red, skipped file channels listed below.
std::string probe_svg(const io::RecordingInfo& info, const InfoReport& report) {
    const probe::Probe& probe = *report.probe;
    double min_x = probe.contacts.front().x_um, max_x = min_x;
    double min_y = probe.contacts.front().y_um, max_y = min_y;
    for (const probe::Contact& contact : probe.contacts) {
        min_x = std::min(min_x, contact.x_um);
        max_x = std::max(max_x, contact.x_um);
        min_y = std::min(min_y, contact.y_um);
        max_y = std::max(max_y, contact.y_um);
    }
    // At most 1200 px tall and 4 px per um; contacts drawn 12 um wide at least 3 px.
    const double span_y = std::max(max_y - min_y, 1.0);
    const double scale = std::min(4.0, 1200.0 / span_y);
    const double size = std::max(3.0, 12.0 * scale);
    const double margin = 40, caption = 60;
    const double width = (max_x - min_x) * scale + 2 * margin + size + 200;
    const double height = span_y * scale + 2 * margin + size + caption;
    static const char* const kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd",
                                           "#8c564b", "#e377c2", "#17becf", "#bcbd22"};
    std::ostringstream svg;
    svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
        << "\" viewBox=\"0 0 " << width << ' ' << height << "\">\n";
    svg << "<title>" << escape_xml(probe.name.empty() ? report.input : probe.name) << "</title>\n";
    svg << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    svg << "<text x=\"" << margin << "\" y=\"20\" font-family=\"sans-serif\" font-size=\"12\">"
        << escape_xml((probe.name.empty() ? std::string("probe") : probe.name) + " - " +
                      std::to_string(info.n_channels) + " channels, " + std::to_string(probe.n_shanks()) +
                      " shank(s); geometry: " + report.geometry_source +
                      (report.geometry_fallback ? " (FALLBACK)" : ""))
        << "</text>\n";
    for (int c = 0; c < probe.n_channels(); ++c) {
        const probe::Contact& contact = probe.contacts[static_cast<std::size_t>(c)];
        const double x = margin + (contact.x_um - min_x) * scale;
        const double y = margin + (max_y - contact.y_um) * scale;
        const bool excluded = contact.excluded || std::binary_search(report.excluded.begin(), report.excluded.end(), c);
        const char* colour = kColours[static_cast<std::size_t>(std::max(contact.shank, 0)) % 8];
        svg << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << size << "\" height=\"" << size << "\" fill=\""
            << (excluded ? "none" : colour) << "\" stroke=\"" << (excluded ? "red" : colour) << "\"><title>channel "
            << c << ", shank " << contact.shank << ", " << escape_xml(contact.id) << " (" << contact.x_um << ", "
            << contact.y_um << ") um" << (excluded ? ", excluded" : "") << "</title></rect>\n";
        if (excluded)
            svg << "<path d=\"M" << x << ' ' << y << " l" << size << ' ' << size << " m0 " << -size << " l" << -size
                << ' ' << size << "\" stroke=\"red\"/>\n";
    }
    double text_y = height - caption + 20;
    std::string skipped;
    for (const auto& [channel, why] : info.skipped_channels)
        skipped += (skipped.empty() ? "" : "; ") + std::to_string(channel) + " (" + why + ")";
    svg << "<text x=\"" << margin << "\" y=\"" << text_y
        << "\" font-family=\"sans-serif\" font-size=\"12\">excluded: red crosses; skipped file channels: "
        << escape_xml(skipped.empty() ? "none" : skipped) << "</text>\n";
    svg << "</svg>\n";
    return svg.str();
}

} // namespace

int cmd_info(int argc, char** argv) {
    InputOptionValues in;
    std::string json_path, svg_path, excluded_text;
    po::options_description visible("spikeline info INPUT [--json FILE] [--svg FILE] [options]\n\n"
                                    "What spikeline makes of a recording: channels (neural and skipped), sample rate, "
                                    "gain, probe geometry, and where each came from. Reads the metadata only.\n\n"
                                    "INPUT: a SpikeGLX .bin/.meta, an Open Ephys recording folder or structure.oebin, "
                                    "or a raw int16 file (with --channels and --sample-rate)\n\noptions");
    visible.add_options()("help,h", "show this help")                                                    //
        ("json", po::value(&json_path), "also write the description as JSON (docs/FORMATS.md)")          //
        ("svg", po::value(&svg_path), "draw the probe (contacts by shank, excluded ones marked) as SVG") //
        ("exclude-channels", po::value(&excluded_text), "channels a run would exclude, to mark them, e.g. 5,100:110");
    add_input_options(visible, in);
    po::options_description all;
    all.add(visible).add_options()("input", po::value(&in.input));
    po::positional_options_description positional;
    positional.add("input", 1);
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, all, positional, vm))
        return 0;
    const auto source = open_input(in, vm, "spikeline info INPUT");
    const io::RecordingInfo& info = source->info();

    InfoReport report;
    report.input = in.input;
    report.excluded = parse_channel_list(excluded_text, "--exclude-channels");
    require(report.excluded.empty() || report.excluded.back() < info.n_channels,
            "--exclude-channels names channel " + std::to_string(report.excluded.empty() ? 0 : report.excluded.back()) +
                " but the recording has " + std::to_string(info.n_channels) + " neural channels (0 to " +
                std::to_string(info.n_channels - 1) + ")");
    try {
        std::string origin;
        report.probe = resolve_probe(in.probe_file, info, &origin);
        report.geometry_source = origin;
        report.geometry_fallback = in.probe_file.empty() && origin.rfind("built-in default", 0) == 0;
    } catch (const InputError& e) {
        // The recording itself is fine; a run would stop here, so say why.
        report.geometry_source = e.what();
    }
    if (report.probe)
        for (int c = 0; c < report.probe->n_channels(); ++c)
            if (report.probe->contacts[static_cast<std::size_t>(c)].excluded)
                report.excluded.push_back(c);
    std::sort(report.excluded.begin(), report.excluded.end());
    report.excluded.erase(std::unique(report.excluded.begin(), report.excluded.end()), report.excluded.end());

    require(svg_path.empty() || report.probe.has_value(),
            "--svg: there is no probe geometry to draw (" + report.geometry_source + "): pass --probe FILE");
    print_text(info, report);
    if (report.geometry_fallback || !report.probe)
        std::cerr << "spikeline: warning: no geometry stated for " << in.input
                  << (report.probe ? ": a run would use the built-in default layout; pass --probe FILE"
                                   : ": a run would stop; pass --probe FILE")
                  << "\n";
    if (!json_path.empty())
        write_text_file(json_path, to_json(info, report).dump(2) + "\n");
    if (!svg_path.empty())
        write_text_file(svg_path, probe_svg(info, report));
    return 0;
}

} // namespace spikeline::cli
