#pragma once
// `spikeline report`: one self-contained HTML file (page, script and data inline) that opens offline.
#include "report/report_data.hpp"

#include <filesystem>
#include <string>

namespace spikeline::report {

/// The page for report data (build_report_data): the embedded web/report.* assets with the data inlined.
std::string render_report_html(const nlohmann::json& data);

/// Builds the report of sort_dir and writes it atomically to out; returns its size in bytes.
std::size_t write_report(const std::filesystem::path& sort_dir, const std::filesystem::path& out,
                         const ReportOptions& options);

} // namespace spikeline::report
