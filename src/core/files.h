// Whole-file reads and atomic writes (temp file + rename: no partial outputs on failure).
#pragma once
#include <string>

namespace edgequant {

std::string read_file(const std::string& path);  // throws InvalidInput naming the path
void write_file_atomic(const std::string& path, const std::string& bytes);
void make_directories(const std::string& path);
size_t file_size(const std::string& path);  // 0 when it cannot be read

}  // namespace edgequant
