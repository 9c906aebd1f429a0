// The `.espdl` file (../shared/espdl-format.md): writer and reader of integer programs. The writer
// applies the chip's filter layouts ((N/16)HWC16 blocks on esp32s3/esp32p4 int8, (N/8)HWC8 at
// int16, plain NHWC / HWCN on the generic C targets), LUT initializers first, every non-parameter
// value in value_info, test inputs/outputs when the program has them; the reader verifies the
// FlatBuffer, undoes the layouts and returns a program the integer runtime runs.
#pragma once
#include <map>
#include <string>

#include "runtime/int_graph.h"

namespace edgequant::deploy {

// The file's bytes (header + FlatBuffer). Deterministic: the same program gives the same bytes.
std::string encode_espdl(const runtime::IntGraph& program);
// A node's attributes as the file stores them: the program's plus ESP-DL's kernel selector
// quant_type (S8, S16, F32: the dtype of the node's output, of its input for a DequantizeLinear,
// as ESP-PPQ writes it), which the target-neutral program does not carry. A node read from a file
// keeps its own.
std::map<std::string, Attribute> espdl_attributes(const runtime::IntGraph& program, const runtime::IntNode& node);
// `source` names the file in errors. Throws InvalidModel with one line on a malformed file.
runtime::IntGraph decode_espdl(const std::string& bytes, const std::string& source);

void write_espdl(const runtime::IntGraph& program, const std::string& path);  // atomic
// `target` (a name or a target file) sets the rounding when the file does not say; it must agree
// with a target the file names.
runtime::IntGraph read_espdl(const std::string& path, const std::string& target = "");

// Wire order of a Conv/Gemm filter: element i of the file is element order[i] of the logical
// weight (Conv OIHW, Gemm [C, N]). `block` is 16 (int8), 8 (int16) or 0 (plain C layout).
std::vector<int64_t> filter_wire_order(const Shape& logical, bool depthwise, bool gemm, int block);
// "(N/16)HWC16", "NHWC", "HWCN", ... as ESP-PPQ names them.
std::string filter_layout_name(int64_t n, bool depthwise, int block, bool one_d = false);
// 16 on esp32s3/esp32p4 (8 for int16 filters), 0 (plain) on the C targets.
int filter_block(const std::map<int, int>& blocks, DType weight);

}  // namespace edgequant::deploy
