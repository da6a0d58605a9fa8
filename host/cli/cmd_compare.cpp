#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "eval/compare.hpp"
#include "probe/probe.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"
#include "util/output_folder.hpp"

#include <boost/program_options.hpp>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace spikeline::cli {

int cmd_compare(int argc, char** argv) {
    namespace po = boost::program_options;
    namespace fs = std::filesystem;

    std::string ground_truth_dir, sorted_dir, probe_file, json_file;
    eval::DetectionCompareOptions options;
    bool nominal_positions = false;
    po::options_description description(
        "usage: spikeline compare --ground-truth DIR/ground_truth --sorted OUTDIR [options]\n\n"
        "Scores spikes against ground truth (SpikeForest conventions).\n"
        "Sorted output (a folder with spike_clusters.npy, e.g. from spikeline sort): every ground-truth unit is\n"
        "scored against its most accurate sorted unit, accuracy = matches / (n_gt + n_sorted - matches) with\n"
        "matches within +-window; prints mean accuracy, recall and precision per SNR bin, well-detected units\n"
        "(accuracy >= 0.8) and false-positive, redundant and over-merged sorted units. Clusters labelled 'noise'\n"
        "in cluster_group.tsv are not units.\n"
        "Detections only (spike_times.npy + spike_channels.npy, from spikeline detect): one-to-one greedy matching\n"
        "in time order, an event matches a spike within +-window on a channel within radius of the unit's peak\n"
        "channel; prints recall per SNR bin, overall recall and precision.\n\noptions");
    description.add_options()         //
        ("help,h", "print this help") //
        ("ground-truth", po::value(&ground_truth_dir)->value_name("DIR"),
         "ground-truth folder: spike_times.npy, spike_units.npy, units.tsv, info.json") //
        ("sorted", po::value(&sorted_dir)->value_name("OUTDIR"),
         "output folder of spikeline sort (Phy) or spikeline detect") //
        ("probe", po::value(&probe_file)->value_name("FILE"),
         "probeinterface JSON (default: the ground-truth folder's ../probe.json)")                  //
        ("json", po::value(&json_file)->value_name("FILE"), "also write the score as JSON to FILE") //
        ("window-ms", po::value(&options.window_ms)->default_value(options.window_ms, "0.4")->value_name("MS"),
         "match window, +- milliseconds") //
        ("radius-um", po::value(&options.radius_um)->default_value(options.radius_um, "50")->value_name("UM"),
         "largest distance between the event's channel and the unit's peak channel (moved by the ground truth's "
         "drift when it has one)") //
        ("nominal-positions", po::bool_switch(&nominal_positions),
         "detections: measure the radius from each unit's nominal peak channel even when the ground truth has a drift "
         "(its drift files are then not read)");

    po::variables_map vm;
    if (!parse_command_line(argc, argv, description, vm))
        return 0;
    require(!ground_truth_dir.empty(), "--ground-truth DIR is required (the simulator's ground_truth folder)");
    require(!sorted_dir.empty(), "--sorted OUTDIR is required (the folder spikeline sort or detect wrote)");
    options.follow_motion = !nominal_positions;

    std::vector<fs::path> inputs = {probe_file};
    for (const char* name : {"spike_times.npy", "spike_units.npy", "units.tsv", "info.json", "motion_times_s.npy",
                             "motion_depths_um.npy", "motion_um.npy"})
        inputs.push_back(fs::path(ground_truth_dir) / name);
    for (const char* name : {"spike_times.npy", "spike_clusters.npy", "spike_channels.npy", "cluster_group.tsv",
                             "detect_info.json", "spikeline_sort.json"})
        inputs.push_back(fs::path(sorted_dir) / name);
    check_output_file(json_file, "--json", inputs);

    const fs::path truth_path = ground_truth_dir;
    require(fs::is_directory(truth_path), "ground-truth folder " + ground_truth_dir +
                                              " does not exist (spikeline simulate writes it as OUT/ground_truth)");
    require(fs::is_directory(sorted_dir), "sorted/detected spikes folder " + sorted_dir + " does not exist");
    if (eval::is_sorted_output(sorted_dir)) {
        const eval::GroundTruth truth = eval::read_ground_truth(truth_path, false); // sorting does not use the drift
        eval::SortingCompareOptions sorting;
        sorting.window_ms = options.window_ms;
        const eval::SortingScore score = eval::compare_sorting(truth, eval::read_sorted(sorted_dir), sorting);
        std::cout << eval::format_report(score) << std::flush;
        if (!json_file.empty())
            write_text_file(json_file, eval::to_json(score).dump(2) + "\n");
        return 0;
    }
    const fs::path probe_path = probe_file.empty() ? truth_path / ".." / "probe.json" : fs::path(probe_file);
    std::error_code ec;
    require(fs::is_regular_file(probe_path, ec),
            "probe file " + probe_path.string() + " not found" +
                (probe_file.empty() ? std::string(": pass --probe FILE") : std::string()));

    const eval::GroundTruth truth = eval::read_ground_truth(truth_path, options.follow_motion);
    const eval::DetectedSpikes detected = eval::read_detected(sorted_dir);
    const probe::Probe probe = probe::read_probeinterface(probe_path);
    const eval::DetectionScore score = eval::compare_detection(truth, detected, probe, options);

    std::cout << eval::format_report(score) << std::flush;
    if (!json_file.empty())
        write_text_file(json_file, eval::to_json(score).dump(2) + "\n");
    return 0;
}

} // namespace spikeline::cli
