#include "export/nwb_writer.hpp"

#include "io/npy.hpp"
#include "io/recording.hpp"
#include "probe/neuropixels.hpp"
#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#include <hdf5.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <vector>

namespace spikeline::exporting {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kNwbVersion = "2.7.0";
constexpr std::size_t kSpikeChunk = 1 << 16; ///< spikes read per pass step
constexpr std::size_t kUnitBuffer = 1024;    ///< spike times held per unit before they are written
constexpr hsize_t kRawChunkFrames = 8192;    ///< raw data chunk: 8192 frames x 64 channels (1 MB)
constexpr hsize_t kRawChunkChannels = 64;

// ---------------------------------------------------------------------------------------------------------------
// HDF5 handles and writing helpers. Every call is checked; HDF5's own error printing is off, the message says what
// failed in the file.

class Handle {
public:
    Handle() = default;
    Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
    Handle(Handle&& other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = -1; }
    Handle& operator=(Handle&& other) noexcept {
        std::swap(id_, other.id_);
        std::swap(close_, other.close_);
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() {
        if (id_ >= 0 && close_)
            close_(id_);
    }
    hid_t get() const { return id_; }
    operator hid_t() const { return id_; }

private:
    hid_t id_ = -1;
    herr_t (*close_)(hid_t) = nullptr;
};

class NwbFile {
public:
    explicit NwbFile(const fs::path& path) : path_(path) {
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        file_ = Handle(check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "create the file"),
                       H5Fclose);
        text_ = Handle(check(H5Tcopy(H5T_C_S1), "make the string type"), H5Tclose);
        check(H5Tset_size(text_, H5T_VARIABLE), "make the string type");
        check(H5Tset_cset(text_, H5T_CSET_UTF8), "make the string type");
    }

    hid_t file() const { return file_; }

    template <class T> T check(T result, const std::string& what) const {
        if (result < 0)
            throw WriteError("cannot write " + path_.string() + ": HDF5 failed to " + what +
                                 " (is the disk full or the folder read-only?)",
                             errno);
        return result;
    }

    Handle group(hid_t parent, const std::string& name) {
        return Handle(
            check(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "create group " + name),
            H5Gclose);
    }
    Handle open_group(const std::string& path) {
        return Handle(check(H5Gopen2(file_, path.c_str(), H5P_DEFAULT), "open group " + path), H5Gclose);
    }

    void attribute(hid_t object, const std::string& name, const std::string& value) {
        Handle space(check(H5Screate(H5S_SCALAR), "make a dataspace"), H5Sclose);
        Handle attr(
            check(H5Acreate2(object, name.c_str(), text_, space, H5P_DEFAULT, H5P_DEFAULT), "create attribute " + name),
            H5Aclose);
        const char* text = value.c_str();
        check(H5Awrite(attr, text_, &text), "write attribute " + name);
    }
    void attribute(hid_t object, const std::string& name, const std::vector<std::string>& values) {
        const hsize_t n = values.size();
        Handle space(check(H5Screate_simple(1, &n, nullptr), "make a dataspace"), H5Sclose);
        Handle attr(
            check(H5Acreate2(object, name.c_str(), text_, space, H5P_DEFAULT, H5P_DEFAULT), "create attribute " + name),
            H5Aclose);
        std::vector<const char*> texts;
        for (const std::string& value : values)
            texts.push_back(value.c_str());
        if (n > 0)
            check(H5Awrite(attr, text_, texts.data()), "write attribute " + name);
    }
    void attribute(hid_t object, const std::string& name, double value, hid_t file_type) {
        Handle space(check(H5Screate(H5S_SCALAR), "make a dataspace"), H5Sclose);
        Handle attr(check(H5Acreate2(object, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT),
                          "create attribute " + name),
                    H5Aclose);
        check(H5Awrite(attr, H5T_NATIVE_DOUBLE, &value), "write attribute " + name);
    }
    /// An object reference attribute (VectorIndex.target, DynamicTableRegion.table).
    void reference_attribute(hid_t object, const std::string& name, const std::string& target) {
        hobj_ref_t reference{};
        check(H5Rcreate(&reference, file_, target.c_str(), H5R_OBJECT, -1), "reference " + target);
        Handle space(check(H5Screate(H5S_SCALAR), "make a dataspace"), H5Sclose);
        Handle attr(check(H5Acreate2(object, name.c_str(), H5T_STD_REF_OBJ, space, H5P_DEFAULT, H5P_DEFAULT),
                          "create attribute " + name),
                    H5Aclose);
        check(H5Awrite(attr, H5T_STD_REF_OBJ, &reference), "write attribute " + name);
    }

    /// The attributes every NWB/HDMF object carries.
    void typed(hid_t object, const std::string& type, const std::string& name_space) {
        attribute(object, "namespace", name_space);
        attribute(object, "neurodata_type", type);
        attribute(object, "object_id", uuid());
    }

    Handle text_dataset(hid_t parent, const std::string& name, const std::string& value) {
        Handle space(check(H5Screate(H5S_SCALAR), "make a dataspace"), H5Sclose);
        Handle set(check(H5Dcreate2(parent, name.c_str(), text_, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                         "create dataset " + name),
                   H5Dclose);
        const char* text = value.c_str();
        check(H5Dwrite(set, text_, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text), "write dataset " + name);
        return set;
    }
    Handle text_dataset(hid_t parent, const std::string& name, const std::vector<std::string>& values) {
        const hsize_t n = values.size();
        Handle space(check(H5Screate_simple(1, &n, nullptr), "make a dataspace"), H5Sclose);
        Handle set(check(H5Dcreate2(parent, name.c_str(), text_, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                         "create dataset " + name),
                   H5Dclose);
        std::vector<const char*> texts;
        for (const std::string& value : values)
            texts.push_back(value.c_str());
        if (n > 0)
            check(H5Dwrite(set, text_, H5S_ALL, H5S_ALL, H5P_DEFAULT, texts.data()), "write dataset " + name);
        return set;
    }
    /// A dataset of shape dims written from memory of memory_type (file_type on disk).
    Handle dataset(hid_t parent, const std::string& name, const std::vector<hsize_t>& dims, hid_t file_type,
                   hid_t memory_type, const void* data) {
        Handle space(check(dims.empty() ? H5Screate(H5S_SCALAR)
                                        : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                           "make a dataspace"),
                     H5Sclose);
        Handle set(check(H5Dcreate2(parent, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                         "create dataset " + name),
                   H5Dclose);
        const bool empty = std::any_of(dims.begin(), dims.end(), [](hsize_t d) { return d == 0; });
        if (!empty && data)
            check(H5Dwrite(set, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "write dataset " + name);
        return set;
    }
    Handle references(hid_t parent, const std::string& name, const std::vector<std::string>& targets) {
        std::vector<hobj_ref_t> refs(targets.size());
        for (std::size_t i = 0; i < targets.size(); ++i)
            check(H5Rcreate(&refs[i], file_, targets[i].c_str(), H5R_OBJECT, -1), "reference " + targets[i]);
        return dataset(parent, name, {targets.size()}, H5T_STD_REF_OBJ, H5T_STD_REF_OBJ, refs.data());
    }

    /// Writes rows [first, first + count) of a 1-D or 2-D dataset (all columns).
    void write_rows(hid_t set, hid_t memory_type, hsize_t first, hsize_t count, hsize_t columns, const void* data) {
        if (count == 0)
            return;
        Handle file_space(check(H5Dget_space(set), "get a dataspace"), H5Sclose);
        const int rank = H5Sget_simple_extent_ndims(file_space);
        const std::array<hsize_t, 2> start{first, 0}, size{count, columns};
        check(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start.data(), nullptr, size.data(), nullptr),
              "select rows");
        Handle memory_space(check(H5Screate_simple(rank, size.data(), nullptr), "make a dataspace"), H5Sclose);
        check(H5Dwrite(set, memory_type, memory_space, file_space, H5P_DEFAULT, data), "write rows");
    }

    void close() {
        check(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flush the file");
        text_ = Handle();
        file_ = Handle();
    }

    /// A random (version 4) UUID: NWB's object_id, and the default file identifier.
    std::string uuid() {
        std::uniform_int_distribution<int> digit(0, 15);
        static const char* hex = "0123456789abcdef";
        std::string id = "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx";
        for (char& c : id) {
            if (c == 'x')
                c = hex[digit(random_)];
            else if (c == 'y')
                c = hex[8 + digit(random_) % 4];
        }
        return id;
    }

private:
    fs::path path_;
    Handle file_;
    Handle text_;
    std::mt19937_64 random_{std::random_device{}()};
};

// ---------------------------------------------------------------------------------------------------------------
// The sort folder.

/// A 1-D .npy of integers or floats read in chunks (any of <i4 <i8 <u4 <u8 <f4 <f8).
class NpyColumn {
public:
    explicit NpyColumn(const fs::path& path) : path_(path) {
        const io::NpyAppendFile file = io::inspect_npy_append_file(path);
        require(file.row_shape.empty() || (file.row_shape.size() == 1 && file.row_shape[0] == 1),
                path.string() + " is not a 1-D array: is this a sort folder?");
        descr_ = file.descr;
        item_ = file.row_bytes;
        rows_ = file.rows;
        require(descr_ == "<i4" || descr_ == "<i8" || descr_ == "<u4" || descr_ == "<u8" || descr_ == "<f4" ||
                    descr_ == "<f8",
                path.string() + " has dtype " + descr_ + ": expected integers or floats");
        in_.open(path, std::ios::binary);
        in_.seekg(static_cast<std::streamoff>(file.data_offset));
    }
    std::size_t rows() const { return rows_; }
    /// The next n values as double (exact for sample indices below 2^53).
    void read(std::size_t n, std::vector<double>& out) {
        bytes_.resize(n * item_);
        in_.read(bytes_.data(), static_cast<std::streamsize>(bytes_.size()));
        require(in_.good(), "cannot read " + path_.string() + ": the file is damaged");
        out.resize(n);
        for (std::size_t i = 0; i < n; ++i)
            out[i] = value(bytes_.data() + i * item_);
    }

private:
    double value(const char* p) const {
        if (descr_ == "<i4")
            return load<std::int32_t>(p);
        if (descr_ == "<i8")
            return static_cast<double>(load<std::int64_t>(p));
        if (descr_ == "<u4")
            return load<std::uint32_t>(p);
        if (descr_ == "<u8")
            return static_cast<double>(load<std::uint64_t>(p));
        if (descr_ == "<f4")
            return load<float>(p);
        return load<double>(p);
    }
    template <class T> static T load(const char* p) {
        T v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    fs::path path_;
    std::string descr_;
    std::size_t item_ = 0, rows_ = 0;
    std::ifstream in_;
    std::vector<char> bytes_;
};

/// params.py values: `key = value` lines; strings in r'...' or '...' quotes.
std::map<std::string, std::string> read_params(const fs::path& path) {
    std::ifstream in(path);
    require(in.good(), path.string() + " not found: SORT_DIR must be a folder `spikeline sort` wrote (with params.py)");
    std::map<std::string, std::string> params;
    for (std::string line; std::getline(in, line);) {
        const std::size_t eq = line.find('=');
        if (eq == std::string::npos)
            continue;
        auto trim = [](std::string s) {
            s.erase(0, s.find_first_not_of(" \t"));
            s.erase(s.find_last_not_of(" \t\r") + 1);
            return s;
        };
        std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
        if (!value.empty() && (value[0] == 'r' || value[0] == 'R') && value.size() > 1 &&
            (value[1] == '\'' || value[1] == '"'))
            value.erase(0, 1);
        if (value.size() >= 2 && (value.front() == '\'' || value.front() == '"') && value.back() == value.front())
            value = value.substr(1, value.size() - 2);
        params[key] = value;
    }
    return params;
}

/// A metric column from cluster_<name>.tsv: `cluster_id<TAB>name` then one row per cluster.
struct MetricColumn {
    std::string name;
    std::map<long long, std::string> values;
    bool numeric = true;
};

std::vector<MetricColumn> read_metric_columns(const fs::path& dir) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        // cluster_info.tsv is Phy's own summary, rewritten on every save: the per-metric files are the source.
        if (name.rfind("cluster_", 0) == 0 && entry.path().extension() == ".tsv" && name != "cluster_info.tsv")
            files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    std::vector<MetricColumn> columns;
    for (const fs::path& file : files) {
        std::ifstream in(file);
        std::string header;
        std::getline(in, header);
        const std::size_t tab = header.find('\t');
        if (tab == std::string::npos || header.substr(0, tab) != "cluster_id")
            continue; // not a per-cluster column file
        MetricColumn column;
        column.name = header.substr(tab + 1);
        column.name.erase(column.name.find_last_not_of("\r") + 1);
        if (column.name.empty() || column.name.find('\t') != std::string::npos)
            continue;
        for (std::string line; std::getline(in, line);) {
            const std::size_t t = line.find('\t');
            if (t == std::string::npos)
                continue;
            std::string value = line.substr(t + 1);
            value.erase(value.find_last_not_of("\r") + 1);
            long long id = 0;
            try {
                id = std::stoll(line.substr(0, t));
            } catch (const std::exception&) {
                throw InputError(file.string() + ": cluster id '" + line.substr(0, t) +
                                 "' is not a number: correct or remove the file");
            }
            char* end = nullptr;
            std::strtod(value.c_str(), &end);
            column.numeric = column.numeric && !value.empty() && end && *end == '\0';
            column.values[id] = value;
        }
        columns.push_back(std::move(column));
    }
    return columns;
}

std::string iso_time(std::time_t t) {
    std::tm utc{};
    gmtime_r(&t, &utc);
    char text[40];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S+00:00", &utc);
    return text;
}

std::time_t modification_time(const fs::path& path) {
    std::error_code ec;
    const auto written = fs::last_write_time(path, ec);
    if (ec)
        return std::time(nullptr);
    return std::chrono::system_clock::to_time_t(std::chrono::file_clock::to_sys(written));
}

/// A number params.py states (Phy's params.py is a file users edit): a clear error when it is not one.
double number_param(const std::map<std::string, std::string>& params, const std::string& key,
                    const fs::path& sort_dir) {
    const std::string& text = params.at(key);
    std::size_t used = 0;
    double value = std::nan("");
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    require(used > 0 && used == text.size() && std::isfinite(value),
            sort_dir.string() + "/params.py: " + key + " = " + text + " is not a number: correct it");
    return value;
}

std::string safe_name(std::string name) {
    std::replace(name.begin(), name.end(), '/', '_');
    return name.empty() ? std::string("probe") : name;
}

} // namespace

NwbExportSummary export_nwb(const fs::path& sort_dir, const fs::path& out, const NwbExportOptions& options) {
    require(fs::is_directory(sort_dir), sort_dir.string() + " is not a folder: give the output folder of `spikeline "
                                                            "sort` (or of `spikeline stream`)");
    require(options.deflate_level >= 1 && options.deflate_level <= 9, "the raw data's gzip level must be 1 to 9");
    const auto params = read_params(sort_dir / "params.py");
    require(params.count("sample_rate"), sort_dir.string() + "/params.py has no sample_rate: is the folder damaged?");
    const double sample_rate = number_param(params, "sample_rate", sort_dir);
    require(std::isfinite(sample_rate) && sample_rate > 0, sort_dir.string() + "/params.py: sample_rate must be > 0");
    json info = json::object();
    if (std::ifstream info_file(sort_dir / "spikeline_sort.json"); info_file.good())
        info = json::parse(info_file, nullptr, false);
    const std::string probe_name =
        info.is_object() && info.contains("probe") && info["probe"].is_string() ? info["probe"].get<std::string>() : "";

    const io::NpyArray positions = io::read_npy(sort_dir / "channel_positions.npy");
    require(positions.shape.size() == 2 && positions.shape[1] == 2 && positions.descr == "<f8",
            sort_dir.string() + "/channel_positions.npy should be an (n_channels, 2) float64 array");
    const std::vector<double> xy = positions.as<double>();
    const int n_channels = static_cast<int>(positions.shape[0]);
    std::vector<std::int32_t> shanks(static_cast<std::size_t>(n_channels), 0);
    if (fs::exists(sort_dir / "channel_shanks.npy")) {
        shanks = io::read_npy_vector<std::int32_t>(sort_dir / "channel_shanks.npy");
        require(static_cast<int>(shanks.size()) == n_channels,
                sort_dir.string() + "/channel_shanks.npy does not have one shank per channel");
    }

    // Templates: sparse (template_ind.npy) or dense, for the mean waveforms.
    const io::NpyArray templates = io::read_npy(sort_dir / "templates.npy");
    require(templates.shape.size() == 3 && templates.descr == "<f4",
            sort_dir.string() + "/templates.npy should be a (templates, samples, channels) float32 array");
    const std::size_t n_templates = templates.shape[0], width = templates.shape[1], rows = templates.shape[2];
    const std::vector<float> template_values = templates.as<float>();
    std::vector<std::int32_t> template_channels;
    if (fs::exists(sort_dir / "template_ind.npy")) {
        const io::NpyArray ind = io::read_npy(sort_dir / "template_ind.npy");
        require(ind.shape == std::vector<std::size_t>({n_templates, rows}) && ind.descr == "<i4",
                sort_dir.string() + "/template_ind.npy does not match templates.npy");
        template_channels = ind.as<std::int32_t>();
    } else {
        for (std::size_t t = 0; t < n_templates; ++t)
            for (std::size_t k = 0; k < rows; ++k)
                template_channels.push_back(static_cast<std::int32_t>(k));
    }

    // Pass 1: spikes per cluster, and per (cluster, template) the count and amplitude sum (the mean waveform is the
    // dominant template times its spikes' mean amplitude: template x amplitude is the spike in uV).
    std::map<long long, std::uint64_t> cluster_spikes;
    std::map<std::pair<long long, long long>, std::pair<std::uint64_t, double>> by_template;
    std::uint64_t n_spikes = 0;
    {
        NpyColumn clusters(sort_dir / "spike_clusters.npy"), spike_templates(sort_dir / "spike_templates.npy"),
            amplitudes(sort_dir / "amplitudes.npy");
        n_spikes = clusters.rows();
        require(spike_templates.rows() == n_spikes && amplitudes.rows() == n_spikes,
                sort_dir.string() + ": spike_clusters, spike_templates and amplitudes differ in length (a folder "
                                    "cut by a crash: run `spikeline recover` on it first)");
        std::vector<double> c, t, a;
        for (std::uint64_t done = 0; done < n_spikes;) {
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kSpikeChunk, n_spikes - done));
            clusters.read(n, c);
            spike_templates.read(n, t);
            amplitudes.read(n, a);
            for (std::size_t i = 0; i < n; ++i) {
                const auto cluster = static_cast<long long>(c[i]);
                const auto template_id = static_cast<long long>(t[i]);
                require(template_id >= 0 && static_cast<std::size_t>(template_id) < n_templates,
                        sort_dir.string() + "/spike_templates.npy names template " + std::to_string(template_id) +
                            " but templates.npy holds " + std::to_string(n_templates));
                ++cluster_spikes[cluster];
                auto& [count, sum] = by_template[{cluster, template_id}];
                ++count;
                sum += a[i];
            }
            done += n;
        }
    }
    const std::vector<MetricColumn> metrics = read_metric_columns(sort_dir);
    std::set<long long> unit_set;
    for (const auto& [cluster, count] : cluster_spikes)
        unit_set.insert(cluster);
    for (const MetricColumn& column : metrics)
        for (const auto& [cluster, value] : column.values)
            unit_set.insert(cluster);
    const std::vector<long long> units(unit_set.begin(), unit_set.end());
    std::map<long long, std::size_t> unit_row;
    for (std::size_t u = 0; u < units.size(); ++u)
        unit_row[units[u]] = u;

    const fs::path temporary = temporary_path(out);
    NwbExportSummary summary;
    try {
        NwbFile file(temporary);
        {
            // Every object handle closes before the file does.
            const hid_t root = file.file();
            file.typed(root, "NWBFile", "core");
            file.attribute(root, "nwb_version", kNwbVersion);
            const std::time_t now = std::time(nullptr);
            const fs::path dat_path = params.count("dat_path") ? fs::path(params.at("dat_path")) : fs::path();
            const std::string start_time =
                !options.session_start_time.empty()
                    ? options.session_start_time
                    : iso_time(modification_time(!dat_path.empty() && fs::exists(dat_path) ? dat_path
                                                                                           : sort_dir / "params.py"));
            file.text_dataset(root, "file_create_date", std::vector<std::string>{iso_time(now)});
            file.text_dataset(root, "identifier", options.identifier.empty() ? file.uuid() : options.identifier);
            file.text_dataset(root, "session_description", options.session_description);
            file.text_dataset(root, "session_start_time", start_time);
            file.text_dataset(root, "timestamps_reference_time", start_time);
            file.group(root, "acquisition");
            file.group(root, "analysis");
            file.group(root, "processing");
            {
                Handle stimulus = file.group(root, "stimulus");
                file.group(stimulus, "presentation");
                file.group(stimulus, "templates");
            }
            Handle general = file.group(root, "general");
            if (!options.experimenter.empty())
                file.text_dataset(general, "experimenter", std::vector<std::string>{options.experimenter});
            if (!options.lab.empty())
                file.text_dataset(general, "lab", options.lab);
            if (!options.institution.empty())
                file.text_dataset(general, "institution", options.institution);
            {
                Handle script = file.text_dataset(general, "source_script", "spikeline export-nwb");
                file.attribute(script, "file_name", "spikeline"); // required by the schema
            }

            // Device and one electrode group per shank.
            const std::string device_name = safe_name(probe_name);
            {
                Handle devices = file.group(general, "devices");
                Handle device = file.group(devices, device_name);
                file.typed(device, "Device", "core");
                file.attribute(device, "description", "probe " + (probe_name.empty() ? "(not named)" : probe_name));
                const std::string first_word = probe_name.substr(0, probe_name.find(' '));
                const bool neuropixels =
                    !first_word.empty() && probe::neuropixels_model(first_word, std::nullopt).has_value();
                file.attribute(device, "manufacturer", neuropixels ? "IMEC" : "");
            }
            Handle ephys = file.group(general, "extracellular_ephys");
            const std::set<std::int32_t> shank_set(shanks.begin(), shanks.end());
            for (std::int32_t shank : shank_set) {
                Handle group = file.group(ephys, "shank" + std::to_string(shank));
                file.typed(group, "ElectrodeGroup", "core");
                file.attribute(group, "description", "shank " + std::to_string(shank) + " of " + device_name);
                file.attribute(group, "location", options.location);
                file.check(H5Lcreate_soft(("/general/devices/" + device_name).c_str(), group, "device", H5P_DEFAULT,
                                          H5P_DEFAULT),
                           "link the device");
            }
            summary.shanks = static_cast<int>(shank_set.size());

            // Electrodes table: one row per channel of the sort, positions on the probe in um (rel_x, rel_y).
            const std::string electrodes_path = "/general/extracellular_ephys/electrodes";
            {
                Handle table = file.group(ephys, "electrodes");
                file.typed(table, "DynamicTable", "hdmf-common");
                file.attribute(table, "description", "the probe's channels in the sort's (and the data file's) order");
                file.attribute(table, "colnames",
                               std::vector<std::string>{"location", "group", "group_name", "rel_x", "rel_y"});
                std::vector<std::int64_t> ids(static_cast<std::size_t>(n_channels));
                std::vector<float> rel_x, rel_y;
                std::vector<std::string> locations, group_names, group_paths;
                for (int c = 0; c < n_channels; ++c) {
                    ids[static_cast<std::size_t>(c)] = c;
                    rel_x.push_back(static_cast<float>(xy[static_cast<std::size_t>(2 * c)]));
                    rel_y.push_back(static_cast<float>(xy[static_cast<std::size_t>(2 * c + 1)]));
                    locations.push_back(options.location);
                    const std::string group = "shank" + std::to_string(shanks[static_cast<std::size_t>(c)]);
                    group_names.push_back(group);
                    group_paths.push_back("/general/extracellular_ephys/" + group);
                }
                const hsize_t n = static_cast<hsize_t>(n_channels);
                Handle id = file.dataset(table, "id", {n}, H5T_STD_I64LE, H5T_NATIVE_INT64, ids.data());
                file.typed(id, "ElementIdentifiers", "hdmf-common");
                auto column = [&](Handle set, const std::string& description) {
                    file.typed(set, "VectorData", "hdmf-common");
                    file.attribute(set, "description", description);
                };
                column(file.text_dataset(table, "location", locations), "brain area of the channel");
                column(file.references(table, "group", group_paths), "the electrode group (shank) of the channel");
                column(file.text_dataset(table, "group_name", group_names), "name of the electrode group");
                column(file.dataset(table, "rel_x", {n}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rel_x.data()),
                       "x on the probe, um");
                column(file.dataset(table, "rel_y", {n}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rel_y.data()),
                       "y (depth along the shank) on the probe, um");
            }
            summary.electrodes = n_channels;

            // Units table.
            Handle units_group = file.group(root, "units");
            file.typed(units_group, "Units", "core");
            file.attribute(units_group, "description",
                           "clusters of the Phy folder (cluster id = id; 0: spikes no unit accepted, group noise)");
            std::vector<std::string> colnames{"spike_times", "electrodes", "waveform_mean"};
            for (const MetricColumn& column : metrics)
                colnames.push_back(column.name);
            file.attribute(units_group, "colnames", colnames);
            {
                std::vector<std::int64_t> ids(units.begin(), units.end());
                Handle id =
                    file.dataset(units_group, "id", {units.size()}, H5T_STD_I64LE, H5T_NATIVE_INT64, ids.data());
                file.typed(id, "ElementIdentifiers", "hdmf-common");
            }
            // spike_times: pass 2 streams the spikes into each unit's slice, through a bounded buffer per unit.
            std::vector<std::uint64_t> offsets(units.size() + 1, 0);
            for (std::size_t u = 0; u < units.size(); ++u)
                offsets[u + 1] = offsets[u] + (cluster_spikes.count(units[u]) ? cluster_spikes.at(units[u]) : 0);
            {
                Handle times =
                    file.dataset(units_group, "spike_times", {n_spikes}, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, nullptr);
                file.typed(times, "VectorData", "hdmf-common");
                file.attribute(times, "description", "spike times of each unit, s from the session start");
                file.attribute(times, "resolution", 1.0 / sample_rate, H5T_IEEE_F64LE);
                std::vector<std::uint64_t> written(units.size(), 0);
                std::vector<std::vector<double>> buffers(units.size());
                auto flush = [&](std::size_t u) {
                    file.write_rows(times, H5T_NATIVE_DOUBLE, offsets[u] + written[u], buffers[u].size(), 1,
                                    buffers[u].data());
                    written[u] += buffers[u].size();
                    buffers[u].clear();
                };
                NpyColumn samples(sort_dir / "spike_times.npy"), clusters(sort_dir / "spike_clusters.npy");
                require(samples.rows() == n_spikes,
                        sort_dir.string() + ": spike_times.npy and spike_clusters.npy differ in length (a folder cut "
                                            "by a crash: run `spikeline recover` on it first)");
                std::vector<double> s, c;
                for (std::uint64_t done = 0; done < n_spikes;) {
                    const std::size_t n =
                        static_cast<std::size_t>(std::min<std::uint64_t>(kSpikeChunk, n_spikes - done));
                    samples.read(n, s);
                    clusters.read(n, c);
                    for (std::size_t i = 0; i < n; ++i) {
                        const std::size_t u = unit_row.at(static_cast<long long>(c[i]));
                        buffers[u].push_back(s[i] / sample_rate);
                        if (buffers[u].size() == kUnitBuffer)
                            flush(u);
                    }
                    done += n;
                }
                for (std::size_t u = 0; u < units.size(); ++u)
                    flush(u);
                Handle index = file.dataset(units_group, "spike_times_index", {units.size()}, H5T_STD_U64LE,
                                            H5T_NATIVE_UINT64, offsets.data() + 1);
                file.typed(index, "VectorIndex", "hdmf-common");
                file.attribute(index, "description", "index into spike_times: the end of each unit's spikes");
                file.reference_attribute(index, "target", "/units/spike_times");
            }
            summary.spikes = n_spikes;
            summary.units = units.size();

            // electrodes (the dominant template's channels) and waveform_mean (that template x its mean amplitude, V).
            {
                std::vector<std::int64_t> electrode_rows;
                std::vector<std::uint64_t> electrode_end;
                std::vector<float> waveforms(units.size() * width * rows, std::numeric_limits<float>::quiet_NaN());
                for (std::size_t u = 0; u < units.size(); ++u) {
                    long long best = -1;
                    std::uint64_t best_count = 0;
                    double best_sum = 0;
                    for (auto it = by_template.lower_bound({units[u], std::numeric_limits<long long>::min()});
                         it != by_template.end() && it->first.first == units[u]; ++it)
                        if (it->second.first > best_count) {
                            best = it->first.second;
                            best_count = it->second.first;
                            best_sum = it->second.second;
                        }
                    if (best >= 0) {
                        const double amplitude_volts = best_sum / static_cast<double>(best_count) * 1e-6;
                        for (std::size_t k = 0; k < rows; ++k) {
                            const std::int32_t channel = template_channels[static_cast<std::size_t>(best) * rows + k];
                            if (channel < 0 || channel >= n_channels)
                                continue;
                            electrode_rows.push_back(channel);
                            for (std::size_t s = 0; s < width; ++s)
                                waveforms[(u * width + s) * rows + k] = static_cast<float>(
                                    template_values[(static_cast<std::size_t>(best) * width + s) * rows + k] *
                                    amplitude_volts);
                        }
                    }
                    electrode_end.push_back(electrode_rows.size());
                }
                Handle electrodes = file.dataset(units_group, "electrodes", {electrode_rows.size()}, H5T_STD_I64LE,
                                                 H5T_NATIVE_INT64, electrode_rows.data());
                file.typed(electrodes, "DynamicTableRegion", "hdmf-common");
                file.attribute(electrodes, "description",
                               "the channels of the unit's template (rows of the electrodes "
                               "table)");
                file.reference_attribute(electrodes, "table", electrodes_path);
                Handle index = file.dataset(units_group, "electrodes_index", {units.size()}, H5T_STD_U64LE,
                                            H5T_NATIVE_UINT64, electrode_end.data());
                file.typed(index, "VectorIndex", "hdmf-common");
                file.attribute(index, "description", "index into electrodes");
                file.reference_attribute(index, "target", "/units/electrodes");
                Handle mean = file.dataset(units_group, "waveform_mean", {units.size(), width, rows}, H5T_IEEE_F32LE,
                                           H5T_NATIVE_FLOAT, waveforms.data());
                file.typed(mean, "VectorData", "hdmf-common");
                file.attribute(
                    mean, "description",
                    "mean spike of the unit on its template's channels (the template's column order; NaN: no "
                    "channel), V");
                file.attribute(mean, "sampling_rate", sample_rate, H5T_IEEE_F32LE);
                file.attribute(mean, "unit", "volts");
            }
            for (const MetricColumn& column : metrics) {
                Handle set;
                if (column.numeric) {
                    std::vector<double> values(units.size(), std::numeric_limits<double>::quiet_NaN());
                    for (const auto& [cluster, value] : column.values)
                        values[unit_row.at(cluster)] = std::stod(value);
                    set = file.dataset(units_group, column.name, {units.size()}, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                       values.data());
                } else {
                    std::vector<std::string> values(units.size());
                    for (const auto& [cluster, value] : column.values)
                        values[unit_row.at(cluster)] = value;
                    set = file.text_dataset(units_group, column.name, values);
                }
                file.typed(set, "VectorData", "hdmf-common");
                file.attribute(set, "description", "cluster_" + column.name + ".tsv of the Phy folder");
            }

            // The raw recording, streamed in chunk-aligned blocks.
            if (options.raw) {
                require(!dat_path.empty() && fs::exists(dat_path),
                        "--nwb-raw: the recording params.py names (" + dat_path.string() +
                            ") does not exist: move it back, or export without the raw data");
                io::OpenOptions open;
                if (params.count("n_channels_dat")) {
                    const double channels = number_param(params, "n_channels_dat", sort_dir);
                    require(channels >= 1 && channels <= 65536 && channels == std::floor(channels),
                            sort_dir.string() + "/params.py: n_channels_dat must be a whole number from 1 to 65536");
                    open.n_channels = static_cast<int>(channels);
                }
                open.sample_rate = sample_rate;
                auto source = io::open_recording(dat_path, open);
                const io::RecordingInfo& raw_info = source->info();
                require(raw_info.n_channels == n_channels,
                        "--nwb-raw: " + dat_path.string() + " delivers " + std::to_string(raw_info.n_channels) +
                            " channels but the sort has " + std::to_string(n_channels) +
                            " (a channel selection): export without the raw data");
                const hsize_t frames = raw_info.n_frames, channels = static_cast<hsize_t>(n_channels);
                Handle series = file.group(file.open_group("/acquisition"), "ElectricalSeries");
                file.typed(series, "ElectricalSeries", "core");
                file.attribute(series, "description", "the recording the sort read (" + raw_info.format + ")");
                file.attribute(series, "comments", "int16 samples; volts = data x conversion");
                Handle create(file.check(H5Pcreate(H5P_DATASET_CREATE), "make properties"), H5Pclose);
                const std::array<hsize_t, 2> chunk{std::max<hsize_t>(1, std::min(kRawChunkFrames, frames)),
                                                   std::min(kRawChunkChannels, channels)};
                file.check(H5Pset_chunk(create, 2, chunk.data()), "set the chunk shape");
                file.check(H5Pset_shuffle(create), "enable the shuffle filter");
                file.check(H5Pset_deflate(create, static_cast<unsigned>(options.deflate_level)), "enable gzip");
                const std::array<hsize_t, 2> dims{frames, channels};
                Handle space(file.check(H5Screate_simple(2, dims.data(), nullptr), "make a dataspace"), H5Sclose);
                Handle data(
                    file.check(H5Dcreate2(series, "data", H5T_STD_I16LE, space, H5P_DEFAULT, create, H5P_DEFAULT),
                               "create the raw data"),
                    H5Dclose);
                const double conversion = (raw_info.microvolts_per_bit > 0 ? raw_info.microvolts_per_bit : 1.0) * 1e-6;
                file.attribute(data, "conversion", conversion, H5T_IEEE_F32LE);
                file.attribute(data, "offset", 0.0, H5T_IEEE_F32LE);
                file.attribute(data, "resolution", -1.0, H5T_IEEE_F32LE);
                file.attribute(data, "unit", "volts");
                // Blocks of whole chunk rows: every chunk is compressed once, from one write.
                std::vector<std::int16_t> block(static_cast<std::size_t>(kRawChunkFrames * channels));
                std::uint64_t done = 0;
                while (const std::size_t n = source->read(block.data(), kRawChunkFrames)) {
                    require(done + n <= frames, dat_path.string() + " holds more frames than its metadata says");
                    file.write_rows(data, H5T_NATIVE_INT16, done, n, channels, block.data());
                    done += n;
                }
                require(done == frames, dat_path.string() + " ended after " + std::to_string(done) + " of " +
                                            std::to_string(frames) + " frames: the file is truncated");
                const double zero = 0.0;
                Handle start = file.dataset(series, "starting_time", {}, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &zero);
                file.attribute(start, "rate", sample_rate, H5T_IEEE_F32LE);
                file.attribute(start, "unit", "seconds");
                std::vector<std::int64_t> all(static_cast<std::size_t>(n_channels));
                for (int c = 0; c < n_channels; ++c)
                    all[static_cast<std::size_t>(c)] = c;
                Handle electrodes =
                    file.dataset(series, "electrodes", {all.size()}, H5T_STD_I64LE, H5T_NATIVE_INT64, all.data());
                file.typed(electrodes, "DynamicTableRegion", "hdmf-common");
                file.attribute(electrodes, "description", "every channel, in the data's column order");
                file.reference_attribute(electrodes, "table", electrodes_path);
                summary.raw_frames = done;
            }
        }
        file.close();
        std::error_code ec;
        fs::rename(temporary, out, ec);
        require(!ec, "cannot rename " + temporary.string() + " to " + out.string() + ": " + ec.message());
    } catch (...) {
        std::error_code ignored;
        fs::remove(temporary, ignored);
        throw;
    }
    return summary;
}

} // namespace spikeline::exporting
