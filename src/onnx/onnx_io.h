// ONNX <-> IR through Debian's libonnx protobuf classes and its shape inference.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "ir/graph.h"

namespace onnx {
class ModelProto;
class GraphProto;
class TensorProto;
}  // namespace onnx

namespace edgequant {

// The newest default-domain opset imported, and the newest Debian's libonnx 1.12 knows (its
// shape inference runs up to that; newer graphs are typed by exec::infer_types_by_running).
constexpr int64_t kMaxOpset = 21;
constexpr int64_t kLibonnxMaxOpset = 17;

// Reads an ONNX file (opsets 6-21; initializers, Constant-node weights, external data,
// symbolic dims). Errors name the file. Constant nodes become initializers.
std::unique_ptr<Graph> import_onnx(const std::string& path);
// From an in-memory model; `base_dir` resolves external-data files.
std::unique_ptr<Graph> import_onnx_model(onnx::ModelProto& model, const std::string& base_dir);

// Replaces every If whose condition is a constant (an initializer or a Constant node, also after
// an earlier fold) by the nodes of the branch it takes; returns how many were folded. Import
// runs it first; an If with a data-dependent condition stays and is refused.
int fold_constant_ifs(onnx::GraphProto& graph);

// Replaces the opset-1 experimental ops WinML-era exporters still write (ImageScaler, Affine,
// Crop) by standard ops; returns how many. Import runs it before shape inference.
int decompose_experimental_ops(onnx::GraphProto& graph, int64_t opset);

// Writes the graph as an ONNX model (atomically: temp file, then rename).
void export_onnx(const Graph& graph, const std::string& path);
void graph_to_model(const Graph& graph, onnx::ModelProto& model);

// TensorProto <-> Tensor (raw_data or typed fields; external data resolved against base_dir).
Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& base_dir = "");
void tensor_to_proto(const Tensor& tensor, onnx::TensorProto& proto);
// Whether ONNX's schema of `type` (default domain, at `opset`, capped at libonnx's newest) lets
// input (or output) `index` have element type `dtype`; nullopt when libonnx has no such schema.
std::optional<bool> schema_allows(const std::string& type, int64_t opset, bool output, size_t index, DType dtype);

// Reads a serialized TensorProto file (the conformance suite's input_N.pb / output_N.pb).
Tensor read_tensor_pb(const std::string& path);

}  // namespace edgequant
