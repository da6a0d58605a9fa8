#include "io/npy.hpp"

#include "util/atomic_file.hpp"
#include "util/errors.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cstring>
#include <limits>
#include <system_error>

namespace spikeline::io {

static_assert(std::endian::native == std::endian::little, "the .npy code assumes a little-endian host");

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;
constexpr std::size_t kDataAlignment = 64;
/// NpyAppendWriter's header size: room for any shape of up to four dimensions, so finish() can rewrite it in place.
constexpr std::size_t kAppendHeaderSize = 128;

/// What a dtype string means: kind ('i', 'u', 'f', 'b'), item size, and whether bytes must be swapped.
struct DtypeInfo {
    char kind = 0;
    std::size_t item_size = 0;
    bool big_endian = false;
    std::string normalized; ///< little-endian spelling, as npy_descr<T>() returns it
};

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& message) {
    throw InputError(path.string() + ": " + message);
}

DtypeInfo parse_descr(const std::filesystem::path& path, const std::string& descr) {
    const auto unsupported = [&]() {
        fail(path, "unsupported dtype '" + descr +
                       "': spikeline reads plain integer, float and bool arrays; convert with "
                       "np.save(path, array.astype(np.int64)) or similar");
    };
    if (descr.size() < 3)
        unsupported();
    DtypeInfo info;
    const char order = descr[0];
    if (order != '<' && order != '>' && order != '|' && order != '=')
        unsupported();
    info.kind = descr[1];
    if (info.kind != 'i' && info.kind != 'u' && info.kind != 'f' && info.kind != 'b')
        unsupported();
    const std::string size_text = descr.substr(2);
    // Item sizes are 1, 2, 4 or 8: more digits is no dtype spikeline reads (and could overflow stoul).
    if (size_text.size() > 2 || !std::all_of(size_text.begin(), size_text.end(),
                                             [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }))
        unsupported();
    info.item_size = std::stoul(size_text);
    const bool valid_size =
        info.kind == 'f' ? (info.item_size == 4 || info.item_size == 8)
                         : (info.item_size == 1 || info.item_size == 2 || info.item_size == 4 || info.item_size == 8);
    if (!valid_size)
        unsupported();
    info.big_endian = order == '>' && info.item_size > 1;
    info.normalized = std::string(info.item_size == 1 ? "|" : "<") + info.kind + size_text;
    return info;
}

/// A tiny reader for the Python-literal dict numpy writes as the header.
class HeaderParser {
public:
    HeaderParser(const std::filesystem::path& path, std::string text) : path_(path), text_(std::move(text)) {}

    void parse(std::string& descr, bool& fortran_order, std::vector<std::size_t>& shape) {
        bool have_descr = false, have_order = false, have_shape = false;
        expect('{');
        while (true) {
            skip_space();
            if (peek() == '}')
                break;
            const std::string key = quoted_string();
            expect(':');
            if (key == "descr") {
                descr = quoted_string();
                have_descr = true;
            } else if (key == "fortran_order") {
                fortran_order = boolean();
                have_order = true;
            } else if (key == "shape") {
                shape = tuple();
                have_shape = true;
            } else {
                bad("unknown key '" + key + "'");
            }
            skip_space();
            if (peek() == ',')
                ++pos_;
        }
        if (!have_descr || !have_order || !have_shape)
            bad("it lacks one of 'descr', 'fortran_order', 'shape'");
    }

private:
    [[noreturn]] void bad(const std::string& what) const {
        fail(path_, "malformed .npy header (" + what + "): the file is damaged or not written by numpy");
    }
    void skip_space() {
        while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_])) != 0)
            ++pos_;
    }
    char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
    void expect(char c) {
        skip_space();
        if (peek() != c)
            bad(std::string("expected '") + c + "' at offset " + std::to_string(pos_));
        ++pos_;
    }
    std::string quoted_string() {
        skip_space();
        const char quote = peek();
        if (quote != '\'' && quote != '"')
            bad("expected a quoted string at offset " + std::to_string(pos_));
        const std::size_t end = text_.find(quote, pos_ + 1);
        if (end == std::string::npos)
            bad("unterminated string");
        std::string value = text_.substr(pos_ + 1, end - pos_ - 1);
        pos_ = end + 1;
        return value;
    }
    bool boolean() {
        skip_space();
        if (text_.compare(pos_, 4, "True") == 0) {
            pos_ += 4;
            return true;
        }
        if (text_.compare(pos_, 5, "False") == 0) {
            pos_ += 5;
            return false;
        }
        bad("fortran_order is neither True nor False");
    }
    std::vector<std::size_t> tuple() {
        std::vector<std::size_t> values;
        expect('(');
        while (true) {
            skip_space();
            if (peek() == ')') {
                ++pos_;
                return values;
            }
            std::size_t value = 0;
            bool any_digit = false;
            while (std::isdigit(static_cast<unsigned char>(peek())) != 0) {
                const auto digit = static_cast<std::size_t>(peek() - '0');
                if (value > (std::numeric_limits<std::size_t>::max() - digit) / 10)
                    bad("shape dimension too large");
                value = value * 10 + digit;
                any_digit = true;
                ++pos_;
            }
            if (peek() == 'L') // Python 2 long literal
                ++pos_;
            if (!any_digit)
                bad("shape holds something other than non-negative integers");
            values.push_back(value);
            skip_space();
            if (peek() == ',')
                ++pos_;
            else if (peek() != ')')
                bad("expected ',' or ')' in shape");
        }
    }

    const std::filesystem::path& path_;
    std::string text_;
    std::size_t pos_ = 0;
};

std::string shape_text(const std::vector<std::size_t>& shape) {
    std::string text = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i > 0)
            text += ", ";
        text += std::to_string(shape[i]);
    }
    if (shape.size() == 1)
        text += ",";
    return text + ")";
}

/// The whole preamble (magic, version 1.0, length, dict, padding, newline) of exactly total_size bytes, or
/// the smallest multiple of kDataAlignment when total_size is 0.
std::string make_header(const char* descr, const std::vector<std::size_t>& shape, std::size_t total_size) {
    const std::string dict =
        std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape_text(shape) + ", }";
    constexpr std::size_t preamble = kMagicSize + 2 + 2;
    const std::size_t minimum = preamble + dict.size() + 1; // +1 for the terminating newline
    if (total_size == 0)
        total_size = (minimum + kDataAlignment - 1) / kDataAlignment * kDataAlignment;
    if (minimum > total_size || total_size - preamble > std::numeric_limits<std::uint16_t>::max())
        throw std::logic_error("npy header for shape " + shape_text(shape) + " does not fit");
    const std::size_t header_length = total_size - preamble;
    std::string header(kMagic, kMagicSize);
    header += '\x01';
    header += '\x00';
    header += static_cast<char>(header_length & 0xff);
    header += static_cast<char>((header_length >> 8) & 0xff);
    header += dict;
    header.append(total_size - header.size() - 1, ' ');
    header += '\n';
    return header;
}

std::size_t element_count_of(const std::vector<std::size_t>& shape) {
    std::size_t count = 1;
    for (const std::size_t dim : shape) {
        if (dim != 0 && count > std::numeric_limits<std::size_t>::max() / dim)
            throw InputError("npy shape " + shape_text(shape) + " is too large");
        count *= dim;
    }
    return count;
}

void swap_bytes_in_place(std::vector<char>& data, std::size_t item_size) {
    for (std::size_t offset = 0; offset + item_size <= data.size(); offset += item_size)
        std::reverse(data.begin() + static_cast<std::ptrdiff_t>(offset),
                     data.begin() + static_cast<std::ptrdiff_t>(offset + item_size));
}

std::uint32_t little_endian_u32(const unsigned char* bytes, std::size_t n) {
    std::uint32_t value = 0;
    for (std::size_t i = n; i-- > 0;)
        value = (value << 8) | bytes[i];
    return value;
}

} // namespace

template <> const char* npy_descr<std::int16_t>() {
    return "<i2";
}
template <> const char* npy_descr<std::int32_t>() {
    return "<i4";
}
template <> const char* npy_descr<std::int64_t>() {
    return "<i8";
}
template <> const char* npy_descr<std::uint32_t>() {
    return "<u4";
}
template <> const char* npy_descr<std::uint64_t>() {
    return "<u8";
}
template <> const char* npy_descr<std::uint8_t>() {
    return "|u1";
}
template <> const char* npy_descr<float>() {
    return "<f4";
}
template <> const char* npy_descr<double>() {
    return "<f8";
}

std::size_t NpyArray::element_count() const {
    return element_count_of(shape);
}

template <class T> std::vector<T> NpyArray::as() const {
    if (descr != npy_descr<T>())
        throw InputError("npy array has dtype '" + descr + "' but '" + npy_descr<T>() +
                         "' was expected: save it with the expected dtype (e.g. array.astype(...))");
    const std::size_t count = element_count();
    if (data.size() != count * sizeof(T))
        throw InputError("npy array holds " + std::to_string(data.size()) + " bytes, not the " +
                         std::to_string(count * sizeof(T)) + " its shape " + shape_text(shape) + " needs");
    std::vector<T> values(count);
    if (count > 0)
        std::memcpy(values.data(), data.data(), data.size());
    return values;
}

namespace {

/// What a .npy preamble and header say.
struct NpyHeader {
    DtypeInfo dtype;
    bool fortran_order = false;
    std::vector<std::size_t> shape;
    std::size_t data_offset = 0;
    std::uintmax_t file_size = 0;
};

NpyHeader read_npy_header(const std::filesystem::path& path, std::ifstream& in) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        fail(path, "no such file: check the path");
    NpyHeader header;
    header.file_size = std::filesystem::file_size(path, ec);
    in.open(path, std::ios::binary);
    if (!in || ec)
        fail(path, "cannot open for reading: check its permissions");

    std::array<unsigned char, kMagicSize + 2> start{};
    in.read(reinterpret_cast<char*>(start.data()), static_cast<std::streamsize>(start.size()));
    if (in.gcount() != static_cast<std::streamsize>(start.size()) || std::memcmp(start.data(), kMagic, kMagicSize) != 0)
        fail(path, "not a .npy file (bad magic): write it with numpy.save");
    const int major = start[kMagicSize];
    if (major < 1 || major > 3)
        fail(path, "unsupported .npy version " + std::to_string(major) + "." + std::to_string(start[kMagicSize + 1]) +
                       ": versions 1.0, 2.0 and 3.0 are supported");
    const std::size_t length_size = major == 1 ? 2 : 4;
    std::array<unsigned char, 4> length_bytes{};
    in.read(reinterpret_cast<char*>(length_bytes.data()), static_cast<std::streamsize>(length_size));
    if (in.gcount() != static_cast<std::streamsize>(length_size))
        fail(path, "truncated: the file ends inside the .npy preamble");
    const std::size_t header_length = little_endian_u32(length_bytes.data(), length_size);
    header.data_offset = start.size() + length_size + header_length;
    if (header.data_offset > header.file_size)
        fail(path, "truncated: the header is " + std::to_string(header_length) + " bytes but the file is only " +
                       std::to_string(header.file_size) + " bytes");
    std::string header_text(header_length, '\0');
    in.read(header_text.data(), static_cast<std::streamsize>(header_length));

    std::string descr;
    HeaderParser(path, header_text).parse(descr, header.fortran_order, header.shape);
    header.dtype = parse_descr(path, descr);
    return header;
}

} // namespace

NpyArray read_npy(const std::filesystem::path& path) {
    std::ifstream in;
    const NpyHeader header = read_npy_header(path, in);
    const std::uintmax_t file_size = header.file_size;
    const std::size_t data_offset = header.data_offset;
    const DtypeInfo& dtype = header.dtype;
    const bool fortran_order = header.fortran_order;
    NpyArray array;
    array.descr = dtype.normalized;
    array.shape = header.shape;
    const std::size_t ndim_above_one =
        static_cast<std::size_t>(std::count_if(array.shape.begin(), array.shape.end(), [](auto d) { return d > 1; }));
    if (fortran_order && ndim_above_one > 1)
        fail(path, "Fortran-ordered arrays are not supported: save np.ascontiguousarray(array) instead");

    std::size_t count = 0;
    try {
        count = array.element_count();
    } catch (const InputError& e) {
        fail(path, e.what());
    }
    const std::size_t available = file_size - data_offset;
    if (count > available / dtype.item_size)
        fail(path, "truncated: header says " + std::to_string(count) + " elements of " + array.descr + " but only " +
                       std::to_string(available) + " bytes follow; the file is damaged or was not fully written");
    if (count * dtype.item_size != available)
        fail(path, "header says " + std::to_string(count) + " elements of " + array.descr + " but " +
                       std::to_string(available) + " bytes follow (trailing bytes): the file is damaged");
    array.data.resize(available);
    in.read(array.data.data(), static_cast<std::streamsize>(available));
    if (in.gcount() != static_cast<std::streamsize>(available))
        fail(path,
             "read error after " + std::to_string(in.gcount()) + " of " + std::to_string(available) + " data bytes");
    if (dtype.big_endian)
        swap_bytes_in_place(array.data, dtype.item_size);
    return array;
}

template <class T> std::vector<T> read_npy_vector(const std::filesystem::path& path) {
    const NpyArray array = read_npy(path);
    const bool one_dimensional = array.shape.size() == 1 || (array.shape.size() == 2 && array.shape[1] == 1);
    if (!one_dimensional)
        fail(path, "expected a 1-D array but the shape is " + shape_text(array.shape) + ": save a flat array");
    if (array.descr != npy_descr<T>())
        fail(path, "dtype is '" + array.descr + "' but '" + npy_descr<T>() +
                       "' is required: save it with array.astype(...) of that type");
    return array.as<T>();
}

template <class T>
void write_npy(const std::filesystem::path& path, const T* data, const std::vector<std::size_t>& shape) {
    const std::size_t count = element_count_of(shape);
    AtomicFile file(path);
    file.stream() << make_header(npy_descr<T>(), shape, 0);
    if (count > 0)
        file.stream().write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * sizeof(T)));
    file.commit();
}

NpyAppendFile inspect_npy_append_file(const std::filesystem::path& path) {
    std::ifstream in;
    const NpyHeader header = read_npy_header(path, in);
    if (header.shape.empty())
        fail(path, "a 0-d array has no rows");
    NpyAppendFile file;
    file.descr = header.dtype.normalized;
    file.row_shape.assign(header.shape.begin() + 1, header.shape.end());
    file.data_offset = header.data_offset;
    file.row_bytes = element_count_of(file.row_shape) * header.dtype.item_size;
    if (file.row_bytes > 0)
        file.rows = static_cast<std::size_t>((header.file_size - header.data_offset) / file.row_bytes);
    return file;
}

std::size_t finish_npy_append_file(const std::filesystem::path& file, const std::filesystem::path& destination,
                                   std::size_t max_rows) {
    const NpyAppendFile found = inspect_npy_append_file(file);
    const std::size_t rows = std::min(max_rows, found.rows);
    std::vector<std::size_t> shape{rows};
    shape.insert(shape.end(), found.row_shape.begin(), found.row_shape.end());
    // The new header has the old one's size, so the data stays where it is: only the shape changes, and bytes after
    // the last kept row (a row cut short by a full disk or a crash) are dropped.
    const std::string header = make_header(found.descr.c_str(), shape, found.data_offset);
    std::error_code ec;
    std::filesystem::resize_file(file, found.data_offset + rows * found.row_bytes, ec);
    require(!ec, "cannot truncate " + file.string() + ": " + ec.message());
    overwrite_start(file, header);
    if (file != destination) {
        std::filesystem::rename(file, destination, ec);
        require(!ec, "cannot rename " + file.string() + " to " + destination.string() + ": " + ec.message());
    }
    return rows;
}

template <class T>
NpyAppendWriter<T>::NpyAppendWriter(std::filesystem::path path, std::vector<std::size_t> row_shape)
    : path_(std::move(path)), temporary_(temporary_path(path_)), row_shape_(std::move(row_shape)),
      row_size_(element_count_of(row_shape_)) {
    out_.open(temporary_, std::ios::binary | std::ios::trunc);
    require(out_.is_open(), "cannot create " + temporary_.string() + ": check that the folder exists and is writable");
    // A placeholder header of the final size; finish() overwrites it with the real shape. It holds the row shape, so
    // that `spikeline recover` can finish the file after a crash.
    std::vector<std::size_t> placeholder{0};
    placeholder.insert(placeholder.end(), row_shape_.begin(), row_shape_.end());
    const std::string header = make_header(npy_descr<T>(), placeholder, kAppendHeaderSize);
    out_.write(header.data(), static_cast<std::streamsize>(header.size()));
    flush();
}

template <class T> void NpyAppendWriter<T>::flush() {
    out_.flush();
    if (!out_.good())
        throw_write_error(temporary_.string());
}

template <class T> NpyAppendWriter<T>::~NpyAppendWriter() {
    if (!finished_) {
        out_.close();
        std::error_code ignored;
        std::filesystem::remove(temporary_, ignored);
    }
}

template <class T> void NpyAppendWriter<T>::append(const T* values, std::size_t count) {
    require(!finished_, "NpyAppendWriter for " + path_.string() + ": append after finish");
    out_.write(reinterpret_cast<const char*>(values), static_cast<std::streamsize>(count * sizeof(T)));
    if (!out_.good())
        throw_write_error(temporary_.string());
    count_ += count;
}

template <class T> std::size_t NpyAppendWriter<T>::rows_on_disk() {
    require(!finished_, "NpyAppendWriter for " + path_.string() + ": rows_on_disk after finish");
    out_.flush();
    std::error_code ec;
    const std::uintmax_t size = std::filesystem::file_size(temporary_, ec);
    const std::size_t row_bytes = row_size_ * sizeof(T);
    if (ec || size < kAppendHeaderSize || row_bytes == 0)
        return 0;
    return std::min(rows(), static_cast<std::size_t>((size - kAppendHeaderSize) / row_bytes));
}

template <class T> std::size_t NpyAppendWriter<T>::finish(std::size_t max_rows) {
    require(!finished_, "NpyAppendWriter for " + path_.string() + ": finish called twice");
    out_.flush();
    const bool written = out_.good();
    out_.close();
    if (written && max_rows >= rows())
        require(count_ % row_size_ == 0,
                "NpyAppendWriter for " + path_.string() + ": the elements do not fill whole rows");
    const std::size_t kept = finish_npy_append_file(temporary_, path_, std::min(max_rows, rows()));
    finished_ = true;
    return kept;
}

#define SPIKELINE_NPY_INSTANTIATE(T)                                                                                   \
    template std::vector<T> NpyArray::as<T>() const;                                                                   \
    template std::vector<T> read_npy_vector<T>(const std::filesystem::path&);                                          \
    template void write_npy<T>(const std::filesystem::path&, const T*, const std::vector<std::size_t>&);               \
    template class NpyAppendWriter<T>;

SPIKELINE_NPY_INSTANTIATE(std::int16_t)
SPIKELINE_NPY_INSTANTIATE(std::int32_t)
SPIKELINE_NPY_INSTANTIATE(std::int64_t)
SPIKELINE_NPY_INSTANTIATE(std::uint32_t)
SPIKELINE_NPY_INSTANTIATE(std::uint64_t)
SPIKELINE_NPY_INSTANTIATE(std::uint8_t)
SPIKELINE_NPY_INSTANTIATE(float)
SPIKELINE_NPY_INSTANTIATE(double)

#undef SPIKELINE_NPY_INSTANTIATE

} // namespace spikeline::io
