// Whole-file reads and atomic writes (temp file + rename: no partial outputs on failure).
#pragma once
#include <string>

namespace edgequant {

std::string read_file(const std::string& path);  // throws InvalidInput naming the path
void write_file_atomic(const std::string& path, const std::string& bytes);
void make_directories(const std::string& path);
size_t file_size(const std::string& path);  // 0 when it cannot be read
// FNV-1a of the bytes as 16 hex digits: "is this the same file" for resume checks ("" for "").
std::string content_hash(const std::string& bytes);
std::string file_hash(const std::string& path);  // content_hash of the file; "" for an empty path

}  // namespace edgequant
