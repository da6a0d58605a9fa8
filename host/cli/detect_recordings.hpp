#pragma once
// `spikeline detect A B ... --out DIR`: several recordings in one run, each into DIR/<its name>.
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

} // namespace spikeline::cli
