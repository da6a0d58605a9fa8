#include "util/output_folder.hpp"

#include "util/atomic_file.hpp"

#include "util/errors.hpp"

#include <algorithm>
#include <system_error>

namespace spikeline {

namespace fs = std::filesystem;

namespace {

bool is_file(const fs::path& path) {
    std::error_code ec;
    return fs::is_regular_file(path, ec);
}

/// An absolute path without symbolic links, "." or "..", and without a trailing separator, so that two spellings
/// of one folder compare equal; the part that does not exist yet is normalised lexically.
fs::path normalised(const fs::path& path) {
    std::error_code ec;
    fs::path result = fs::weakly_canonical(fs::absolute(path, ec), ec);
    if (ec)
        result = fs::absolute(path).lexically_normal();
    if (!result.has_filename() && result.has_parent_path() && result != result.root_path())
        result = result.parent_path();
    return result;
}

/// True when `folder` is `path` or one of its ancestors (both normalised).
bool is_same_or_ancestor(const fs::path& folder, const fs::path& path) {
    const auto [folder_end, path_end] = std::mismatch(folder.begin(), folder.end(), path.begin(), path.end());
    (void)path_end;
    return folder_end == folder.end();
}

/// A temporary recording (NAME.bin.tmpPID, see SpikeGlxWriter) of a run still writing or killed before its end: the
/// data received so far, which a new run in the folder could remove. Empty when there is none.
std::string unfinished_recording_in(const fs::path& dir) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (temporary_owner(entry.path()) && name.find(".bin.tmp") != std::string::npos)
            return name;
    }
    return {};
}

/// A SpikeGLX pair (NAME.bin beside NAME.meta) in dir, as "NAME.bin"; empty when there is none.
std::string spikeglx_pair_in(const fs::path& dir) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        fs::path meta = entry.path();
        meta.replace_extension(".meta");
        if (entry.path().extension() == ".bin" && entry.is_regular_file(ec) && is_file(meta))
            return entry.path().filename().string();
    }
    return {};
}

std::string describe(const FolderResults& results) {
    if (results.command == "simulate")
        return "a simulated recording with its ground truth (spikeline simulate; " + results.marker + ")";
    if (results.command == "ground_truth")
        return "the ground truth of a simulated recording (spikeline simulate; " + results.marker + ")";
    if (results.command == "recording")
        return "a SpikeGLX recording (" + results.marker + ")";
    if (results.command == "unfinished")
        return "the unfinished recording of a running or interrupted run (" + results.marker +
               "; once that run has ended, `spikeline recover` keeps its whole frames)";
    return "the results of spikeline " + results.command + " (" + results.marker + ")";
}

/// A name for a new folder inside the input's folder, for the message.
std::string suggested_subfolder(const std::string& command) {
    if (command == "detect")
        return "detected";
    if (command == "sort")
        return "sorted";
    return command;
}

} // namespace

std::vector<FolderResults> results_in_folder(const fs::path& dir) {
    std::vector<FolderResults> found;
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        return found;
    // A stream folder is also a Phy folder (spikeline_sort.json) and holds its raw copy: it counts as a stream.
    const bool stream = is_file(dir / "stream.json");
    const bool simulate = is_file(dir / "ground_truth" / "info.json");
    if (stream)
        found.push_back({"stream", "stream.json"});
    else if (is_file(dir / "spikeline_sort.json"))
        found.push_back({"sort", "spikeline_sort.json"});
    if (is_file(dir / "detect_info.json"))
        found.push_back({"detect", "detect_info.json"});
    if (simulate)
        found.push_back({"simulate", "ground_truth/info.json"});
    if (is_file(dir / "info.json") && is_file(dir / "spike_units.npy"))
        found.push_back({"ground_truth", "info.json, spike_units.npy"});
    if (const std::string unfinished = unfinished_recording_in(dir); !unfinished.empty())
        found.push_back({"unfinished", unfinished});
    if (!stream && !simulate) {
        const std::string pair = spikeglx_pair_in(dir);
        if (!pair.empty())
            found.push_back({"recording", pair});
    }
    return found;
}

void check_output_folder(const OutputFolderRequest& request) {
    const fs::path out = normalised(request.out_dir);
    const std::string shown = request.out_dir.string();
    for (const fs::path& input : request.inputs) {
        std::error_code ec;
        if (input.empty() || !fs::exists(input, ec))
            continue;
        const fs::path resolved = normalised(input);
        const fs::path folder = fs::is_directory(resolved, ec) ? resolved : resolved.parent_path();
        require(out != folder, "--out " + shown + " is the folder of the input " + input.string() +
                                   ": writing there could replace or mix with the input's files; choose another "
                                   "--out (a new folder, e.g. " +
                                   (request.out_dir / suggested_subfolder(request.command)).string() + ")");
        require(!is_same_or_ancestor(out, folder), "--out " + shown + " holds the input " + input.string() +
                                                       " in a subfolder: choose another --out (a new folder)");
    }
    if (request.overwrite)
        return;
    for (const FolderResults& results : results_in_folder(out)) {
        const bool own = results.command == request.command;
        // Only simulate and stream write a SpikeGLX recording; beside another one it would replace or confuse it.
        if (results.command == "recording" && request.command != "simulate" && request.command != "stream")
            continue;
        if (own && request.command == "stream")
            throw InputError("--out " + shown + " holds " + describe(results) +
                             ": a live stream cannot be re-run, so its recording and spikes would be lost; choose "
                             "another --out, or pass --overwrite to replace them");
        if (own)
            continue; // re-running a command into its own earlier output is how people re-run
        throw InputError("--out " + shown + " already holds " + describe(results) + ", which spikeline " +
                         request.command +
                         " would replace or mix with: choose another --out, or pass --overwrite to write there "
                         "anyway");
    }
}

void check_output_file(const fs::path& out_file, const std::string& option, const std::vector<fs::path>& inputs) {
    std::error_code ec;
    if (out_file.empty() || !fs::exists(out_file, ec))
        return;
    for (const fs::path& input : inputs) {
        if (input.empty())
            continue;
        require(!fs::equivalent(out_file, input, ec), option + " " + out_file.string() + " is the input " +
                                                          input.string() +
                                                          ", which writing it would destroy: choose another file");
    }
}

} // namespace spikeline
