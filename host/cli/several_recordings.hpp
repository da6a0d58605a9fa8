#pragma once
// `spikeline detect|sort A B ... --out DIR`: several recordings in one run, each into DIR/<its name>.
#include "cli/options.hpp"

#include <boost/program_options.hpp>
#include <string>
#include <vector>

namespace spikeline::cli {

/// Detects in each of `inputs` (read with `in`'s options) into out_dir/<name of the input>, each recording as an
/// independent stream with its own probe, sample rate and parameters: on the opencl backend all of them through the
/// same kernel launches (OpenclStreams, one thread per recording), on the others one after another. A recording that
/// cannot be opened or read is reported by name and skipped; the others are written. Prints a summary per recording
/// and in total and writes out_dir/detect_batch.json. Throws InputError naming every failed input after the others
/// are done.
int detect_recordings(const std::vector<std::string>& inputs, const InputOptionValues& in,
                      const boost::program_options::variables_map& vm, const DetectRunOptions& options,
                      const std::string& out_dir, bool overwrite, bool quiet);

/// The output folder's name for each input: the folder's name, or the file's name without its last extension
/// (run_g0_t0.imec1.ap.bin -> run_g0_t0.imec1.ap); "_2", "_3"... when an earlier input took it.
std::vector<std::string> output_names(const std::vector<std::string>& inputs);

/// `spikeline sort A B ... --out DIR`: `sort` (argv: its command line) once per input, into DIR/<name of the input>,
/// one after another (the sorting stage runs one recording per backend), with every other option as given. A
/// recording that fails is reported by name and skipped. Throws InputError for options that name one recording's
/// files (--sorter, --units-from, --nwb), and, after the others are done, naming every failed input.
int sort_recordings(int argc, char** argv, const boost::program_options::options_description& all,
                    const boost::program_options::positional_options_description& positional,
                    const boost::program_options::variables_map& vm, const std::vector<std::string>& inputs,
                    const std::string& out_dir, bool quiet);

} // namespace spikeline::cli
