#pragma once
// NumPy .npy format (version 1.0/2.0/3.0 read, 1.0 written): magic "\x93NUMPY", version, little-endian header
// length, a Python-dict header {'descr', 'fortran_order', 'shape'} padded so the data starts on a 64-byte
// boundary, then the raw C-order data.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace spikeline::io {

/// The numpy type string ("<i2", "<i4", "<u8", "<f4", "<f8", "<i8", "|u1") for a C++ element type.
template <class T> const char* npy_descr();

/// A whole .npy array as read from disk (small files only: outputs and ground truth, never recordings).
struct NpyArray {
    std::string descr;
    std::vector<std::size_t> shape;
    std::vector<char> data; ///< C-order bytes

    std::size_t element_count() const;
    /// The elements as T; throws InputError when descr is not T's type.
    template <class T> std::vector<T> as() const;
};

/// Reads a .npy file; throws InputError naming the file on a bad magic, header, dtype or a truncated body.
NpyArray read_npy(const std::filesystem::path& path);

/// Reads a 1-D (or N x 1) array of exactly type T.
template <class T> std::vector<T> read_npy_vector(const std::filesystem::path& path);

/// Writes a C-order array atomically (temporary file + rename).
template <class T>
void write_npy(const std::filesystem::path& path, const T* data, const std::vector<std::size_t>& shape);

template <class T> void write_npy(const std::filesystem::path& path, const std::vector<T>& values) {
    write_npy(path, values.data(), {values.size()});
}

/// A .npy file an NpyAppendWriter wrote or was writing (NAME.npy.tmpPID after a crash): its element type and row
/// shape (the placeholder header holds them) and the whole rows its size holds.
struct NpyAppendFile {
    std::string descr;
    std::vector<std::size_t> row_shape;
    std::size_t rows = 0;
    std::size_t data_offset = 0;
    std::size_t row_bytes = 0;
};

/// Reads an append file's header and counts the whole rows after it; throws InputError on a bad header.
NpyAppendFile inspect_npy_append_file(const std::filesystem::path& path);

/// Keeps the first max_rows whole rows of an append file (all it holds, if fewer), writes their shape into its header,
/// drops any bytes after them, and renames it to destination (which may be the file itself). Returns the rows kept.
std::size_t finish_npy_append_file(const std::filesystem::path& file, const std::filesystem::path& destination,
                                   std::size_t max_rows);

/// Appends the rows of an array (elements of a 1-D array by default, or C-order rows of shape row_shape) to a
/// temporary file as they come (bounded memory for outputs of any length); finish() writes the final shape
/// (rows, row_shape...) into the fixed-size header and renames the file into place.
template <class T> class NpyAppendWriter {
public:
    explicit NpyAppendWriter(std::filesystem::path path, std::vector<std::size_t> row_shape = {});
    ~NpyAppendWriter();
    NpyAppendWriter(const NpyAppendWriter&) = delete;
    NpyAppendWriter& operator=(const NpyAppendWriter&) = delete;

    void append(const T* values, std::size_t count);
    void append(const T& value) { append(&value, 1); }
    std::size_t size() const { return count_; }
    /// Hands the rows appended so far to the system (they survive a crash of the process); throws WriteError.
    void flush();
    /// Whole rows appended.
    std::size_t rows() const { return count_ / row_size_; }
    /// Whole rows that reached the file: rows(), unless a write failed (disk full) part of the way.
    std::size_t rows_on_disk();
    /// Finishes the file with its first max_rows rows (all that reached it, if fewer: after a failed write, what was
    /// written is kept) and renames it into place; returns the rows kept.
    std::size_t finish(std::size_t max_rows = static_cast<std::size_t>(-1));

private:
    std::filesystem::path path_;
    std::filesystem::path temporary_;
    std::ofstream out_;
    std::vector<std::size_t> row_shape_;
    std::size_t row_size_ = 1;
    std::size_t count_ = 0;
    bool finished_ = false;
};

} // namespace spikeline::io
