#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace spikeline::cli {

// Each subcommand parses its own options (argv[0] is the subcommand name) and returns the exit status.
int cmd_simulate(int argc, char** argv);
int cmd_detect(int argc, char** argv);
int cmd_sort(int argc, char** argv);
int cmd_compare(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_devices(int argc, char** argv);
int cmd_decode(int argc, char** argv);
int cmd_stream(int argc, char** argv);
int cmd_replay(int argc, char** argv);
int cmd_recover(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_report(int argc, char** argv);
int cmd_export_nwb(int argc, char** argv);
int cmd_keygen(int argc, char** argv);
int cmd_verify(int argc, char** argv);

// spikeline bench --decoder: decoder training time and per-bin step latency on synthetic sessions.
int run_decoder_bench(const std::vector<int>& input_counts, int bins, int lags, int passes, std::uint64_t seed,
                      const std::string& json_path);

} // namespace spikeline::cli
