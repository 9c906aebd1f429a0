// File helpers.
#include "core/files.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "edgequant/error.h"

namespace edgequant {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::InvalidInput, path + ": cannot open file");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) {
      f.close();
      std::remove(tmp.c_str());
      fail(ErrorCode::InvalidInput, path + ": cannot write file");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(ErrorCode::InvalidInput, path + ": cannot write file");
  }
}

void make_directories(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) fail(ErrorCode::InvalidInput, path + ": cannot create directory (" + ec.message() + ")");
}

size_t file_size(const std::string& path) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<size_t>(n);
}

}  // namespace edgequant
