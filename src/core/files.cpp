// File helpers.
#include "core/files.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
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
  // A temporary of this process beside the target, renamed over it only once every byte is
  // written and flushed: a full disk or a file-size limit leaves the previous file (or none),
  // never a partial one, and two processes writing one directory never share a temporary.
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  auto refuse = [&](int err) {
    std::remove(tmp.c_str());
    fail(ErrorCode::InvalidInput, path + ": cannot write file (" + std::strerror(err ? err : EIO) + ")");
  };
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) refuse(errno);
  int err = 0;
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) err = errno ? errno : EIO;
  if (std::fflush(f) != 0 && !err) err = errno ? errno : EIO;
  if (std::fclose(f) != 0 && !err) err = errno ? errno : EIO;
  if (err) refuse(err);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) refuse(errno);
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

std::string content_hash(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : bytes) h = (h ^ ch) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string file_hash(const std::string& path) { return path.empty() ? "" : content_hash(read_file(path)); }

}  // namespace edgequant
