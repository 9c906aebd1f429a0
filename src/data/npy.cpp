// .npy header parsing and a minimal zip container for .npz (zlib does the inflating and CRC).
#include "data/npy.h"

#include <zlib.h>

#include <cstring>
#include <regex>

#include "core/files.h"
#include "edgequant/error.h"

namespace edgequant {

namespace {
struct DescrEntry {
  const char* descr;
  DType dtype;
};
const DescrEntry kDescrs[] = {
    {"<f4", DType::Float32}, {"<f8", DType::Float64}, {"<f2", DType::Float16}, {"<i8", DType::Int64},
    {"<i4", DType::Int32},   {"<i2", DType::Int16},   {"|i1", DType::Int8},    {"|u1", DType::UInt8},
    {"|b1", DType::Bool},    {"<u2", DType::UInt16},  {"<u4", DType::UInt32},  {"<u8", DType::UInt64},
};

uint32_t rd32(const unsigned char* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }
uint16_t rd16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
void wr32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void wr16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>(v >> 8));
}
}  // namespace

Tensor parse_npy(const std::string& bytes, const std::string& where) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0)
    fail(ErrorCode::InvalidInput, where + ": not a .npy file");
  int major = p[6];
  size_t header_len, offset;
  if (major == 1) {
    header_len = rd16(p + 8);
    offset = 10;
  } else {
    if (bytes.size() < 12) fail(ErrorCode::InvalidInput, where + ": truncated .npy header");
    header_len = rd32(p + 8);
    offset = 12;
  }
  if (offset + header_len > bytes.size()) fail(ErrorCode::InvalidInput, where + ": truncated .npy header");
  std::string header = bytes.substr(offset, header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([^']*)'")))
    fail(ErrorCode::InvalidInput, where + ": .npy header has no descr");
  std::string descr = m[1];
  if (descr == "<b1") descr = "|b1";
  DType dtype = DType::Undefined;
  for (const auto& d : kDescrs)
    if (descr == d.descr) dtype = d.dtype;
  if (dtype == DType::Undefined) fail(ErrorCode::InvalidInput, where + ": unsupported .npy dtype '" + descr + "'");
  if (std::regex_search(header, std::regex("'fortran_order'\\s*:\\s*True")))
    fail(ErrorCode::InvalidInput,
         where + ": Fortran-ordered arrays are not supported (save with np.ascontiguousarray)");
  if (!std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")))
    fail(ErrorCode::InvalidInput, where + ": .npy header has no shape");
  Shape shape;
  std::string dims = m[1];
  std::regex num("\\d+");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator(); ++it)
    shape.push_back(std::stoll(it->str()));
  size_t data_off = offset + header_len;
  size_t need = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  if (bytes.size() - data_off < need)
    fail(ErrorCode::InvalidInput, where + ": .npy data is truncated (" + std::to_string(bytes.size() - data_off) +
                                      " bytes, shape " + shape_str(shape) + " needs " + std::to_string(need) + ")");
  return Tensor::from_bytes(dtype, shape, bytes.data() + data_off, need);
}

std::string serialize_npy(const Tensor& t) {
  const char* descr = nullptr;
  for (const auto& d : kDescrs)
    if (d.dtype == t.dtype()) descr = d.descr;
  if (!descr) fail(ErrorCode::Unsupported, std::string("cannot write dtype ") + dtype_name(t.dtype()) + " to .npy");
  std::string shape;
  for (int64_t d : t.shape()) shape += std::to_string(d) + ",";
  if (t.shape().size() > 1) shape.pop_back();
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  wr16(out, static_cast<uint16_t>(header.size()));
  out += header;
  out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

Tensor read_npy(const std::string& path) { return parse_npy(read_file(path), path); }

void write_npy(const std::string& path, const Tensor& tensor) { write_file_atomic(path, serialize_npy(tensor)); }

NamedTensors read_npz(const std::string& path) {
  std::string bytes = read_file(path);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  // End of central directory: signature 0x06054b50 within the last 64 KiB.
  size_t eocd = std::string::npos;
  if (bytes.size() >= 22) {
    for (size_t i = bytes.size() - 22;; --i) {
      if (rd32(p + i) == 0x06054b50) {
        eocd = i;
        break;
      }
      if (i == 0 || bytes.size() - i > 65557) break;
    }
  }
  if (eocd == std::string::npos) fail(ErrorCode::InvalidInput, path + ": not a .npz (zip) file");
  uint16_t count = rd16(p + eocd + 10);
  size_t cd = rd32(p + eocd + 16);
  NamedTensors out;
  for (uint16_t e = 0; e < count; ++e) {
    if (cd + 46 > bytes.size() || rd32(p + cd) != 0x02014b50)
      fail(ErrorCode::InvalidInput, path + ": corrupt zip directory");
    uint16_t method = rd16(p + cd + 10);
    uint32_t csize = rd32(p + cd + 20), usize = rd32(p + cd + 24);
    uint16_t nlen = rd16(p + cd + 28), xlen = rd16(p + cd + 30), clen = rd16(p + cd + 32);
    size_t local = rd32(p + cd + 42);
    std::string name = bytes.substr(cd + 46, nlen);
    cd += 46 + nlen + xlen + clen;
    if (csize == 0xffffffffu || usize == 0xffffffffu || local == 0xffffffffu)
      fail(ErrorCode::InvalidInput, path + ": entry '" + name + "' needs zip64 (over 4 GiB), which is not supported");
    if (local + 30 > bytes.size() || rd32(p + local) != 0x04034b50)
      fail(ErrorCode::InvalidInput, path + ": corrupt zip entry");
    size_t data = local + 30 + rd16(p + local + 26) + rd16(p + local + 28);
    if (data + csize > bytes.size()) fail(ErrorCode::InvalidInput, path + ": entry '" + name + "' is truncated");
    std::string content;
    if (method == 0) {
      content = bytes.substr(data, csize);
    } else if (method == 8) {
      content.resize(usize);
      z_stream zs{};
      inflateInit2(&zs, -MAX_WBITS);
      zs.next_in = const_cast<Bytef*>(p + data);
      zs.avail_in = csize;
      zs.next_out = reinterpret_cast<Bytef*>(content.data());
      zs.avail_out = usize;
      int rc = inflate(&zs, Z_FINISH);
      inflateEnd(&zs);
      if (rc != Z_STREAM_END) fail(ErrorCode::InvalidInput, path + ": entry '" + name + "' is corrupt");
    } else {
      fail(ErrorCode::InvalidInput, path + ": entry '" + name + "' uses an unsupported zip compression");
    }
    std::string key =
        name.size() > 4 && name.substr(name.size() - 4) == ".npy" ? name.substr(0, name.size() - 4) : name;
    out.emplace_back(key, parse_npy(content, path + ":" + name));
  }
  return out;
}

void write_npz(const std::string& path, const NamedTensors& tensors) {
  std::string out, dir;
  for (const auto& [key, tensor] : tensors) {
    std::string name = key + ".npy";
    std::string content = serialize_npy(tensor);
    uint32_t crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(content.data()), static_cast<uInt>(content.size())));
    uint32_t offset = static_cast<uint32_t>(out.size());
    auto header = [&](std::string& s, bool central) {
      wr32(s, central ? 0x02014b50 : 0x04034b50);
      if (central) wr16(s, 20);
      wr16(s, 20);    // version needed
      wr16(s, 0);     // flags
      wr16(s, 0);     // stored
      wr16(s, 0);     // time
      wr16(s, 0x21);  // date (1980-01-01)
      wr32(s, crc);
      wr32(s, static_cast<uint32_t>(content.size()));
      wr32(s, static_cast<uint32_t>(content.size()));
      wr16(s, static_cast<uint16_t>(name.size()));
      wr16(s, 0);
      if (central) {
        wr16(s, 0);
        wr16(s, 0);
        wr16(s, 0);
        wr32(s, 0);
        wr32(s, offset);
      }
      s += name;
    };
    header(out, false);
    out += content;
    header(dir, true);
  }
  uint32_t cd_offset = static_cast<uint32_t>(out.size());
  out += dir;
  wr32(out, 0x06054b50);
  wr16(out, 0);
  wr16(out, 0);
  wr16(out, static_cast<uint16_t>(tensors.size()));
  wr16(out, static_cast<uint16_t>(tensors.size()));
  wr32(out, static_cast<uint32_t>(dir.size()));
  wr32(out, cd_offset);
  wr16(out, 0);
  write_file_atomic(path, out);
}

}  // namespace edgequant
