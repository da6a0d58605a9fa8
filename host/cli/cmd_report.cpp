#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "report/html_report.hpp"
#include "util/errors.hpp"
#include "util/output_folder.hpp"

#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <string>

namespace spikeline::cli {

int cmd_report(int argc, char** argv) {
    namespace po = boost::program_options;
    namespace fs = std::filesystem;

    std::string sort_dir, out, ground_truth;
    report::ReportOptions options;
    po::options_description visible(
        "usage: spikeline report SORT_DIR [--out report.html] [--ground-truth DIR]\n\n"
        "Writes one self-contained HTML file (opens offline in any browser) describing a sort: summary, probe map\n"
        "of the units, drift map with the motion estimate, and per unit the mean waveform on the probe, ISI\n"
        "histogram, amplitude and rate over time and metrics, with a sortable, filterable units table. With\n"
        "--ground-truth it adds the accuracy table of spikeline compare.\n\noptions");
    visible.add_options()                                                                                        //
        ("help,h", "print this help")                                                                            //
        ("out,o", po::value(&out)->value_name("FILE"), "the HTML file to write (default: SORT_DIR/report.html)") //
        ("ground-truth", po::value(&ground_truth)->value_name("DIR"),
         "simulator ground-truth folder (DIR/ground_truth of spikeline simulate): add the accuracy table") //
        ("drift-spikes", po::value(&options.max_drift_spikes)->default_value(options.max_drift_spikes),
         "spikes drawn in the drift map (evenly subsampled)");
    po::options_description all;
    all.add(visible).add_options()("sort-dir", po::value(&sort_dir));
    po::positional_options_description positional;
    positional.add("sort-dir", 1);
    po::variables_map vm;
    if (!parse_command_line(argc, argv, visible, all, positional, vm))
        return 0;
    require(!sort_dir.empty(), "SORT_DIR is required: the output folder of spikeline sort (or stream)");
    require(options.max_drift_spikes >= 1, "--drift-spikes must be at least 1");
    const fs::path out_path = out.empty() ? fs::path(sort_dir) / "report.html" : fs::path(out);
    require(out_path.extension() == ".html" || out_path.extension() == ".htm",
            "--out " + out_path.string() + " does not end in .html: name the report FILE.html");
    std::vector<fs::path> inputs;
    for (const char* name : {"spike_times.npy", "spike_clusters.npy", "spike_templates.npy", "amplitudes.npy",
                             "templates.npy", "template_ind.npy", "channel_positions.npy", "cluster_info.tsv",
                             "spikeline_sort.json", "pc_features.npy", "motion.npy"})
        inputs.push_back(fs::path(sort_dir) / name);
    check_output_file(out_path, "--out", inputs);
    options.ground_truth_dir = ground_truth;
    const std::size_t bytes = report::write_report(sort_dir, out_path, options);
    std::printf("report  %s (%.1f MB)\n", out_path.string().c_str(), static_cast<double>(bytes) / 1e6);
    return 0;
}

} // namespace spikeline::cli
