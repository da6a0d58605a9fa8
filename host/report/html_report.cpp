#include "report/html_report.hpp"

#include "util/atomic_file.hpp"
#include "util/errors.hpp"
#include "web_assets.hpp"

#include <string_view>

namespace spikeline::report {

namespace {

void replace_once(std::string& text, std::string_view placeholder, std::string_view value) {
    const std::size_t at = text.find(placeholder);
    if (at == std::string::npos)
        throw std::logic_error("web/report.html lacks the placeholder " + std::string(placeholder));
    text.replace(at, placeholder.size(), value);
}

} // namespace

std::string render_report_html(const nlohmann::json& data) {
    std::string json = data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    // Inside <script>, "</" could close the element early; "<\/" is the same JSON string.
    for (std::size_t at = json.find("</"); at != std::string::npos; at = json.find("</", at + 3))
        json.replace(at, 2, "<\\/");
    std::string page(web::report_html);
    replace_once(page, "/*@STYLE@*/", web::common_css);
    replace_once(page, "/*@PLOT@*/", web::plot_js);
    replace_once(page, "/*@SCRIPT@*/", web::report_js);
    replace_once(page, "@DATA@", json);
    return page;
}

std::size_t write_report(const std::filesystem::path& sort_dir, const std::filesystem::path& out,
                         const ReportOptions& options) {
    const std::string page = render_report_html(build_report_data(sort_dir, options));
    write_text_file(out, page);
    return page.size();
}

} // namespace spikeline::report
