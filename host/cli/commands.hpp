#pragma once

namespace spikeline::cli {

// Each subcommand parses its own options (argv[0] is the subcommand name) and returns the exit status.
int cmd_simulate(int argc, char** argv);
int cmd_detect(int argc, char** argv);
int cmd_sort(int argc, char** argv);
int cmd_compare(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_devices(int argc, char** argv);
int cmd_decode(int argc, char** argv);

} // namespace spikeline::cli
