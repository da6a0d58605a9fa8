#pragma once
// Checks an output folder before a command writes into it, so that no command replaces its own inputs or the
// results of another command.
#include <filesystem>
#include <string>
#include <vector>

namespace spikeline {

/// Results of a spikeline command found in a folder, recognised by the file that command always writes.
struct FolderResults {
    /// simulate, ground_truth, detect, sort, stream, recording (a SpikeGLX pair) or unfinished (NAME.bin.tmpPID left
    /// by a run that was killed)
    std::string command;
    std::string marker; ///< the file that gave it away, relative to the folder
};

/// The results in dir, at most one entry per command; empty when dir does not exist or holds none.
std::vector<FolderResults> results_in_folder(const std::filesystem::path& dir);

/// What a command is about to write and what it reads.
struct OutputFolderRequest {
    std::string command; ///< simulate, detect, sort or stream
    std::filesystem::path out_dir;
    std::vector<std::filesystem::path> inputs; ///< files and folders the command reads (missing ones are skipped)
    bool overwrite = false;                    ///< --overwrite: results of another command may be replaced
};

/// Throws InputError when out_dir is the folder of an input (or a folder holding an input below it), or when it
/// holds results of another command (or of an earlier stream, which cannot be re-run) and overwrite is false.
/// Re-running a command into its own earlier output is allowed.
void check_output_folder(const OutputFolderRequest& request);

/// Throws InputError when out_file (the value of `option`) is one of the input files: writing it would destroy it.
void check_output_file(const std::filesystem::path& out_file, const std::string& option,
                       const std::vector<std::filesystem::path>& inputs);

} // namespace spikeline
