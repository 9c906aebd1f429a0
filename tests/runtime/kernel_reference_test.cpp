// Every integer kernel against values computed by hand: one node, a few codes, the expected codes
// worked out in the comment beside them (rounding half-up = floor(x + 0.5), as ESP32-S3; one case
// half-to-even). These cases do not depend on the simulator or the `.espdl` writer, so a kernel
// and the simulation cannot drift together. EveryIntegerKernelHasACase fails when a type in the
// op registry (src/ir/ops.def) has an integer kernel and no case here.
// Links the LibTorch-free runtime only.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "runtime/interpreter.h"
#include "runtime/kernels/kernels.h"

using namespace edgequant;
using namespace edgequant::runtime;

namespace {

std::set<std::string>& covered() {
  static std::set<std::string> s;
  return s;
}
struct Covers {
  explicit Covers(const char* op) { covered().insert(op); }
};
// A test of op type `Op`'s kernel; registers the type for the coverage test.
#define KERNEL_CASE(Op, Name)                    \
  static const Covers covers_##Op##_##Name{#Op}; \
  TEST(KernelReference, Op##_##Name)

IntTensor codes(DType d, int exponent, Shape shape, std::vector<int64_t> v) {
  IntTensor t;
  t.dtype = d;
  t.exponents = {exponent};
  t.shape = std::move(shape);
  t.ints = std::move(v);
  return t;
}
IntTensor i8(int exponent, Shape shape, std::vector<int64_t> v) {
  return codes(DType::Int8, exponent, std::move(shape), std::move(v));
}
IntTensor i64(std::vector<int64_t> v) {
  Shape s{int64_t(v.size())};
  return codes(DType::Int64, 0, s, std::move(v));
}
IntTensor f32(Shape shape, std::vector<float> v) {
  IntTensor t;
  t.dtype = DType::Float32;
  t.shape = std::move(shape);
  t.floats = std::move(v);
  return t;
}

// A one-node program: graph inputs fed with given tensors, constants, one output "y".
struct OneNode {
  IntGraph g;
  TensorMap feeds;
  explicit OneNode(RoundingMode r = RoundingMode::HalfUp) { g.rounding = r; }
  OneNode& in(const std::string& name, IntTensor t) {
    ValueInfo vi;
    vi.dtype = t.dtype;
    vi.exponent = t.exponent();
    vi.shape = t.shape;
    g.values[name] = vi;
    g.inputs.push_back(name);
    feeds[name] = std::move(t);
    return *this;
  }
  OneNode& constant(const std::string& name, IntTensor t) {
    g.initializers[name] = std::move(t);
    return *this;
  }
  // Runs `op` on `inputs` ("" = omitted) into y of dtype `d` and exponent `e`.
  IntTensor run(const std::string& op, std::vector<std::string> inputs, DType d, int e,
                std::map<std::string, Attribute> attrs = {}) {
    IntNode n;
    n.name = "node";
    n.op_type = op;
    n.inputs = std::move(inputs);
    n.outputs = {"y"};
    n.attrs = std::move(attrs);
    g.nodes.push_back(n);
    ValueInfo vi;
    vi.dtype = d;
    vi.exponent = e;
    g.values["y"] = vi;
    g.outputs = {"y"};
    verify_program(g);
    return run_program(g, feeds).at("y");
  }
};

void expect_codes(const IntTensor& y, const Shape& shape, const std::vector<int64_t>& want) {
  EXPECT_EQ(y.shape, shape);
  EXPECT_EQ(y.ints, want);
}

using A = std::map<std::string, Attribute>;
using V = std::vector<int64_t>;

// ---- conv.cpp
KERNEL_CASE(Conv, PerChannelShiftBiasAndTie) {
  // x NHWC [1,2,2,1] = [[1,2],[3,4]] 2^-1; w OIHW [2,1,2,2] 2^-2; bias codes at 2^-3; y 2^-2:
  // shift = e_y - e_x - e_w = 1. ch0: 1+2+3+4 + 4 = 14 -> 7; ch1: 1-2+0+8 - 2 = 5 -> 2.5 -> 3.
  OneNode p;
  p.in("x", i8(-1, {1, 2, 2, 1}, {1, 2, 3, 4}))
      .constant("w", i8(-2, {2, 1, 2, 2}, {1, 1, 1, 1, 1, -1, 0, 2}))
      .constant("b", codes(DType::Int32, -3, {2}, {4, -2}));
  expect_codes(p.run("Conv", {"x", "w", "b"}, DType::Int8, -2), {1, 1, 1, 2}, {7, 3});
}

KERNEL_CASE(Conv, HalfToEvenTie) {
  // The same ch1 accumulator, 5 >> 1 = 2.5 -> 2 on a half-to-even chip (ESP32-P4).
  OneNode p(RoundingMode::HalfEven);
  p.in("x", i8(-1, {1, 2, 2, 1}, {1, 2, 3, 4}))
      .constant("w", i8(-2, {1, 1, 2, 2}, {1, -1, 0, 2}))
      .constant("b", codes(DType::Int32, -3, {1}, {-2}));
  expect_codes(p.run("Conv", {"x", "w", "b"}, DType::Int8, -2), {1, 1, 1, 1}, {2});
}

KERNEL_CASE(Conv, FusedRelu) {
  // 1x1 weight 1, activation Relu: negatives clamp to 0.
  OneNode p;
  p.in("x", i8(0, {1, 2, 2, 1}, {1, -2, 3, -4})).constant("w", i8(0, {1, 1, 1, 1}, {1}));
  expect_codes(p.run("Conv", {"x", "w"}, DType::Int8, 0, {{"activation", std::string("Relu")}}), {1, 2, 2, 1},
               {1, 0, 3, 0});
}

KERNEL_CASE(Conv, PaddingAndStride) {
  // [[1,2],[3,4]], 1x1 weight 3, pads 1 all round, stride 2: the padded 4x4 input sampled at
  // (0,0), (0,2), (2,0), (2,2) = pad, pad, pad, 4 -> 0, 0, 0, 12.
  OneNode p;
  p.in("x", i8(0, {1, 2, 2, 1}, {1, 2, 3, 4})).constant("w", i8(0, {1, 1, 1, 1}, {3}));
  expect_codes(p.run("Conv", {"x", "w"}, DType::Int8, 0, {{"pads", V{1, 1, 1, 1}}, {"strides", V{2, 2}}}), {1, 2, 2, 1},
               {0, 0, 0, 12});
}

KERNEL_CASE(Conv, OneDimensionalCausalDilatedDepthwise) {
  // ESP-DL's 1-D layout: x [N=1, W=4, C=2] 2^0 = frames (1,10) (2,20) (3,30) (4,40); depthwise
  // weight OIW [2,1,2] = ch0 (1,2), ch1 (1,-1); dilation 2, pads [l=2, r=0] (causal), y 2^0.
  // ch0 y[t] = 1*x[t-2] + 2*x[t]: 2, 4, 1+6, 2+8 = 2, 4, 7, 10.
  // ch1 y[t] = x[t-2] - x[t]: -10, -20, 10-30, 20-40 = -10, -20, -20, -20.
  OneNode p;
  p.in("x", i8(0, {1, 4, 2}, {1, 10, 2, 20, 3, 30, 4, 40})).constant("w", i8(0, {2, 1, 2}, {1, 2, 1, -1}));
  expect_codes(p.run("Conv", {"x", "w"}, DType::Int8, 0,
                     {{"group", int64_t(2)}, {"pads", V{2, 0}}, {"dilations", V{2}}, {"strides", V{1}}}),
               {1, 4, 2}, {2, -10, 4, -20, 7, -20, 10, -20});
}

KERNEL_CASE(Gemm, BiasShiftAndRounding) {
  // x [1,3] = 1,2,3 2^-1; w [C=3,N=2] = [[1,0],[2,1],[-1,3]] 2^-1; b 2^-2 = 1, 0; y 2^-1: shift 1.
  // n0: 1+4-3+1 = 3 -> 1.5 -> 2; n1: 0+2+9+0 = 11 -> 5.5 -> 6.
  OneNode p;
  p.in("x", i8(-1, {1, 3}, {1, 2, 3}))
      .constant("w", i8(-1, {3, 2}, {1, 0, 2, 1, -1, 3}))
      .constant("b", codes(DType::Int32, -2, {2}, {1, 0}));
  expect_codes(p.run("Gemm", {"x", "w", "b"}, DType::Int8, -1), {1, 2}, {2, 6});
}

KERNEL_CASE(MatMul, ActivationTimesActivation) {
  // a 2^-1 [[1,2,3],[-1,0,2]] x b 2^-1 [[1,0],[0,1],[2,-1]]: acc [[7,-1],[3,-2]] at 2^-2; y 2^-1,
  // shift 1: 3.5 -> 4, -0.5 -> 0, 1.5 -> 2, -1 -> -1. B is read as a C-target filter: its
  // memory is N-major ([1,0,2], [0,1,-1]) under dims [3, 2].
  OneNode p;
  p.in("a", i8(-1, {2, 3}, {1, 2, 3, -1, 0, 2})).in("b", i8(-1, {3, 2}, {1, 0, 2, 0, 1, -1}));
  expect_codes(p.run("MatMul", {"a", "b"}, DType::Int8, -1), {2, 2}, {4, 0, 2, -1});
}

KERNEL_CASE(MatMul, BatchedAndVectorOperands) {
  // The same rows as a batch of two [1, 3] matrices against one [3, 2]; then a 1-D [3] row
  // vector (output [2]).
  OneNode p;
  p.in("a", i8(-1, {2, 1, 3}, {1, 2, 3, -1, 0, 2})).constant("b", i8(-1, {3, 2}, {1, 0, 2, 0, 1, -1}));
  expect_codes(p.run("MatMul", {"a", "b"}, DType::Int8, -1), {2, 1, 2}, {4, 0, 2, -1});
  OneNode v;
  v.in("a", i8(-1, {3}, {1, 2, 3})).constant("b", i8(-1, {3, 2}, {1, 0, 2, 0, 1, -1}));
  expect_codes(v.run("MatMul", {"a", "b"}, DType::Int8, -1), {2}, {4, 0});
}

KERNEL_CASE(MatMul, BlockedFilterOrder) {
  // A target with 2-column blocks ((N/2)HWC2): b [[1,0,1],[0,1,1],[2,-1,0]] is stored as block 0
  // (c-major pairs: 1,0 | 0,1 | 2,-1) then column 2 (1,1,0). acc [[7,-1,3],[3,-2,-1]] -> shift 1:
  // [[4,0,2],[2,-1,0]].
  OneNode p;
  p.g.filter_blocks = {{8, 2}};
  p.in("a", i8(-1, {2, 3}, {1, 2, 3, -1, 0, 2})).constant("b", i8(-1, {3, 3}, {1, 0, 0, 1, 2, -1, 1, 1, 0}));
  expect_codes(p.run("MatMul", {"a", "b"}, DType::Int8, -1), {2, 3}, {4, 0, 2, 2, -1, 0});
}

// ---- elementwise.cpp
KERNEL_CASE(Add, BroadcastScalarAndSaturation) {
  // Same grid 2^-3: 10+5, -20+5, 127+5 = 132 -> 127, -128+5.
  OneNode p;
  p.in("a", i8(-3, {4}, {10, -20, 127, -128})).in("b", i8(-3, {1}, {5}));
  expect_codes(p.run("Add", {"a", "b"}, DType::Int8, -3), {4}, {15, -15, 127, -123});
}

KERNEL_CASE(Add, FloatTensors) {
  // ESP-DL's F32 nodes: 1.5 + 0.25, 2 + 0.25.
  OneNode p;
  p.in("a", f32({2}, {1.5f, 2.f})).in("b", f32({1}, {0.25f}));
  IntTensor y = p.run("Add", {"a", "b"}, DType::Float32, 0);
  EXPECT_EQ(y.floats, (std::vector<float>{1.75f, 2.25f}));
}

KERNEL_CASE(Sub, BroadcastRows) {
  // [2,2] - [2]: 1-10, 2-(-100), 3-10, 4-(-100).
  OneNode p;
  p.in("a", i8(0, {2, 2}, {1, 2, 3, 4})).in("b", i8(0, {2}, {10, -100}));
  expect_codes(p.run("Sub", {"a", "b"}, DType::Int8, 0), {2, 2}, {-9, 102, -7, 104});
}

KERNEL_CASE(Mul, RescaleRoundAndSaturate) {
  // 2^-2 x 2^-3 -> 2^-4: products times 2^-1: 6 -> 3, -15 -> -7.5 -> -7, 10000 -> 5000 -> 127.
  OneNode p;
  p.in("a", i8(-2, {3}, {3, -5, 100})).in("b", i8(-3, {3}, {2, 3, 100}));
  expect_codes(p.run("Mul", {"a", "b"}, DType::Int8, -4), {3}, {3, -7, 127});
}

KERNEL_CASE(Mod, FmodOfDequantizedCodes) {
  // a 2^-2 = -1.75, 1.25, 2.25, -0.75, 1; b 2^-2 = 0.75 (0 for the last); y 2^-3:
  // fmodf: -0.25 -> -2, 0.5 -> 4, 0 -> 0, -0 -> 0, x mod 0 = 0 (ESP-DL) -> 0.
  OneNode p;
  p.in("a", i8(-2, {5}, {-7, 5, 9, -3, 4})).in("b", i8(-2, {5}, {3, 3, 3, 3, 0}));
  expect_codes(p.run("Mod", {"a", "b"}, DType::Int8, -3, {{"fmod", int64_t(1)}}), {5}, {-2, 4, 0, 0, 0});
}

KERNEL_CASE(Mod, ScalarDivisorRoundsAtTheOutput) {
  // a 2^-3 = 0.875, -0.625; b 2^-1 = 0.5 broadcast; y 2^-2: 0.375 -> 1.5 -> 2, -0.125 -> -0.5 -> 0.
  OneNode p;
  p.in("a", i8(-3, {2}, {7, -5})).in("b", i8(-1, {1}, {1}));
  expect_codes(p.run("Mod", {"a", "b"}, DType::Int8, -2, {{"fmod", int64_t(1)}}), {2}, {2, 0});
}

KERNEL_CASE(Div, ScalarDivisorPerRowMultipliesByARoundedReciprocal) {
  // a 2^-2 [[-42, 10], [82, 4]] / b 2^0 [[7], [41]] -> y 2^0, r = 2^(e_a - e_b - e_y) = 1/4.
  // ESP-DL merges the shapes to rows of 2 with a one-element divisor: a * fl(r / b) in float32.
  // -42 * fl(1/28) = -1.5000001 -> -2 (the exact -1.5 would round half up to -1); 10/28 -> 0;
  // 82 * fl(1/164) = 0.49999997 -> 0 (exactly 0.5 -> 1); 4/164 -> 0.
  OneNode p;
  p.in("a", i8(-2, {2, 2}, {-42, 10, 82, 4})).in("b", i8(0, {2, 1}, {7, 41}));
  expect_codes(p.run("Div", {"a", "b"}, DType::Int8, 0), {2, 2}, {-2, 0, 0, 0});
}

KERNEL_CASE(Div, VectorDivisorDividesOnce) {
  // The same values with the divisor broadcast out: fl(a * r) / b, one float32 rounding:
  // -1.5 -> -1 and 0.5 -> 1 (half up).
  OneNode p;
  p.in("a", i8(-2, {2, 2}, {-42, 10, 82, 4})).in("b", i8(0, {2, 2}, {7, 7, 41, 41}));
  expect_codes(p.run("Div", {"a", "b"}, DType::Int8, 0), {2, 2}, {-1, 0, 1, 0});
}

KERNEL_CASE(Div, ZerosAndOneElementOperands) {
  // x / 0 saturates to x's sign, 0 / x is 0 (and 0 / 0 is 0 in the vector kernels).
  OneNode p;
  p.in("a", i8(0, {4}, {5, -5, 0, 0})).in("b", i8(0, {4}, {0, 0, 0, 3}));
  expect_codes(p.run("Div", {"a", "b"}, DType::Int8, 0), {4}, {127, -128, 0, 0});
  // One element each: int8 runs the scalar-dividend table (-42 * 2^-2 / 7 = -1.5 -> -1; its
  // entry for b = 0 is -inf unless a > 0, so 0 / 0 -> -128); int16 the scalar-divisor kernel
  // (-42 * fl(1/28) -> -2; 0 / 0 -> 0).
  auto one = [](DType d, int64_t a, int64_t b) {
    OneNode q;
    q.in("a", codes(d, -2, {1}, {a})).in("b", codes(d, 0, {1}, {b}));
    return q.run("Div", {"a", "b"}, d, 0).ints.at(0);
  };
  EXPECT_EQ(one(DType::Int8, -42, 7), -1);
  EXPECT_EQ(one(DType::Int16, -42, 7), -2);
  EXPECT_EQ(one(DType::Int8, 0, 0), -128);
  EXPECT_EQ(one(DType::Int16, 0, 0), 0);
}

TEST(KernelReference, EspdlElemwiseRowMergesLikeEspdl) {
  // dl_base_elemwise.cpp: [1,8,16] / [1,8,1] -> rows of 16 with a one-element divisor;
  // [1,16,4,4] / [1,16,1,1] (NCHW, per channel) -> rows of 16 with one divisor each;
  // [4,1] / [1,1] -> one row of 4 against a scalar; equal shapes -> one row.
  ElemwiseRow r = espdl_elemwise_row({1, 8, 16}, {1, 8, 1}, {1, 8, 16});
  EXPECT_EQ(r.a, 16);
  EXPECT_EQ(r.b, 1);
  r = espdl_elemwise_row({1, 16, 4, 4}, {1, 16, 1, 1}, {1, 16, 4, 4});
  EXPECT_EQ(r.a, 16);
  EXPECT_EQ(r.b, 1);
  r = espdl_elemwise_row({4, 1}, {1, 1}, {4, 1});
  EXPECT_EQ(r.a, 4);
  EXPECT_EQ(r.b, 1);
  EXPECT_EQ(r.merged_dims, 1u);
  r = espdl_elemwise_row({2, 3, 4}, {2, 3, 4}, {2, 3, 4});
  EXPECT_EQ(r.a, 24);
  EXPECT_EQ(r.b, 24);
}

KERNEL_CASE(Pow, PowfOfDequantizedCodes) {
  // a 2^-2 = 1.5, -1.5, 0.75; b 2^0 = 2; y 2^-3: 2.25 -> 18, 2.25 -> 18, 0.5625 -> 4.5 -> 5.
  OneNode p;
  p.in("a", i8(-2, {3}, {6, -6, 3})).constant("b", i8(0, {1}, {2}));
  expect_codes(p.run("Pow", {"a", "b"}, DType::Int8, -3), {3}, {18, 18, 5});
}

// ---- pool.cpp
KERNEL_CASE(MaxPool, PadsAreIgnoredNotZero) {
  // NHWC [1,2,2,2]: (0,0) = 1,-5; (0,1) = 7,-2; (1,0) = -3,-8; (1,1) = 4,-1. 2x2 window, pads
  // bottom/right 1: windows {all}, {(0,1),(1,1)}, {(1,0),(1,1)}, {(1,1)}.
  OneNode p;
  p.in("x", i8(-2, {1, 2, 2, 2}, {1, -5, 7, -2, -3, -8, 4, -1}));
  expect_codes(p.run("MaxPool", {"x"}, DType::Int8, -2, {{"kernel_shape", V{2, 2}}, {"pads", V{0, 0, 1, 1}}}),
               {1, 2, 2, 2}, {7, -1, 7, -1, 4, -1, 4, -1});
}

KERNEL_CASE(AveragePool, OneDimensionalCausal) {
  // x [1, W=3, C=1] = 2, 4, 7 (2^0), kernel [2], pads [1, 0], divisor 2 (the full window):
  // (0+2)/2 = 1, (2+4)/2 = 3, (4+7)/2 = 5.5 -> 6.
  OneNode p;
  p.in("x", i8(0, {1, 3, 1}, {2, 4, 7}));
  expect_codes(p.run("AveragePool", {"x"}, DType::Int8, 0, {{"kernel_shape", V{2}}, {"pads", V{1, 0}}}), {1, 3, 1},
               {1, 3, 6});
}

KERNEL_CASE(AveragePool, FullWindowDivisor) {
  // [[1,2],[3,5]] 2^-1, 2x2 window, pads bottom/right 1, divisor always 4 (ESP-DL):
  // 11/4 = 2.75 -> 3; 7/4 = 1.75 -> 2; 8/4 = 2; 5/4 = 1.25 -> 1.
  OneNode p;
  p.in("x", i8(-1, {1, 2, 2, 1}, {1, 2, 3, 5}));
  expect_codes(p.run("AveragePool", {"x"}, DType::Int8, -1, {{"kernel_shape", V{2, 2}}, {"pads", V{0, 0, 1, 1}}}),
               {1, 2, 2, 1}, {3, 2, 2, 1});
}

KERNEL_CASE(GlobalAveragePool, RescaleAndNegativeTie) {
  // Channels-last [1,2,2,2], 2^-2 -> 2^-3: c0 sum 10 -> 10 * 2 / 4 = 5; c1 sum -9 -> -4.5 -> -4.
  OneNode p;
  p.in("x", i8(-2, {1, 2, 2, 2}, {1, -1, 2, -2, 3, -3, 4, -3}));
  expect_codes(p.run("GlobalAveragePool", {"x"}, DType::Int8, -3), {1, 1, 1, 2}, {5, -4});
}

// ---- activation.cpp (no table: the float function in float32 between exact rescalings)
struct ActivationCase {
  const char* op;
  A attrs;
  int y_exponent;
  V want;  // for x = 0, 16, -16 at 2^-4 = 0, 1, -1
};
const ActivationCase kActivations[] = {
    // y at 2^-7 (x 128) unless said. 0.5 -> 64; 0.7310586 -> 93.575 -> 94; 0.2689414 -> 34.42 -> 34.
    {"Sigmoid", {}, -7, {64, 94, 34}},
    // 0; 0.7615942 -> 97.48 -> 97; -97.48 -> -97.
    {"Tanh", {}, -7, {0, 97, -97}},
    // 0.2 x + 0.5: 0.5 -> 64; 0.7 -> 89.6 -> 90; 0.3 -> 38.4 -> 38.
    {"HardSigmoid", {}, -7, {64, 90, 38}},
    // x relu6(x + 3) / 6: 0; 2/3 -> 85.33 -> 85; -1/3 -> -42.67 -> -43.
    {"HardSwish", {}, -7, {0, 85, -43}},
    // alpha 0.1: 0; 1 -> 128 -> 127 (saturated); -0.1 -> -12.8 -> -13.
    {"LeakyRelu", {{"alpha", 0.1f}}, -7, {0, 127, -13}},
    // alpha 1: 0; 1 -> 127 (saturated); e^-1 - 1 = -0.6321 -> -80.91 -> -81.
    {"Elu", {}, -7, {0, 127, -81}},
    // y at 2^-5: e^0 = 1 -> 32; e -> 86.99 -> 87; e^-1 -> 11.77 -> 12.
    {"Exp", {}, -5, {32, 87, 12}},
    // x sigmoid(x): 0; 0.7310586 -> 94; -0.2689414 -> -34.42 -> -34.
    {"Swish", {}, -7, {0, 94, -34}},
};
// Every row's op type counts as covered.
const std::vector<Covers> covers_activations = [] {
  std::vector<Covers> v;
  for (const ActivationCase& c : kActivations) v.emplace_back(c.op);
  return v;
}();

TEST(KernelReference, ActivationsFloat32Path) {
  for (const ActivationCase& c : kActivations) {
    SCOPED_TRACE(c.op);
    OneNode p;
    p.in("x", i8(-4, {3}, {0, 16, -16}));
    expect_codes(p.run(c.op, {"x"}, DType::Int8, c.y_exponent, c.attrs), {3}, c.want);
  }
}

KERNEL_CASE(LUT, Int8TableIndexedByCode) {
  // 256 entries, table[c + 128] = -c saturated: -128 -> 127, -1 -> 1, 0, 5 -> -5, 127 -> -127.
  V table;
  for (int64_t c = -128; c < 128; ++c) table.push_back(std::min<int64_t>(-c, 127));
  OneNode p;
  p.in("x", i8(-3, {5}, {-128, -1, 0, 5, 127})).constant("table", i8(-4, {256}, table));
  expect_codes(p.run("LUT", {"x"}, DType::Int8, -4, {{"lut", std::string("table")}}), {5}, {127, 1, 0, -5, -127});
}

KERNEL_CASE(LUT, Int16TableWithStep) {
  // 257 entries for int16 (step 256), table[k] = k: index = round((x + 32768) / 256):
  // -32768 -> 0; -32640 -> 0.5 -> 1; 32767 -> 255.996 -> 256.
  V table;
  for (int64_t k = 0; k <= 256; ++k) table.push_back(k);
  OneNode p;
  p.in("x", codes(DType::Int16, -8, {3}, {-32768, -32640, 32767}))
      .constant("table", codes(DType::Int16, 0, {257}, table));
  expect_codes(p.run("LUT", {"x"}, DType::Int16, 0, {{"lut", std::string("table")}}), {3}, {0, 1, 256});
}

KERNEL_CASE(Relu, SameGridClampsCodes) {
  OneNode p;
  p.in("x", i8(-2, {4}, {-3, 0, 5, -128}));
  expect_codes(p.run("Relu", {"x"}, DType::Int8, -2), {4}, {0, 0, 5, 0});
}

KERNEL_CASE(Clip, BoundsThenExactLeftShift) {
  // Bounds -20, 24 (codes at the input's 2^-2), output 2^-3: clamp then x 2.
  OneNode p;
  p.in("x", i8(-2, {4}, {-50, -10, 10, 50})).constant("lo", i8(-2, {}, {-20})).constant("hi", i8(-2, {}, {24}));
  expect_codes(p.run("Clip", {"x", "lo", "hi"}, DType::Int8, -3), {4}, {-40, -20, 20, 48});
}

KERNEL_CASE(Softmax, LastAxis) {
  // 0, 1, 2 -> 0.09003, 0.24473, 0.66524 -> x 128: 11.52 -> 12, 31.33 -> 31, 85.15 -> 85.
  OneNode p;
  p.in("x", i8(-4, {1, 3}, {0, 16, 32}));
  expect_codes(p.run("Softmax", {"x"}, DType::Int8, -7), {1, 3}, {12, 31, 85});
}

KERNEL_CASE(Sqrt, SqrtfBetweenRescalings) {
  // x 2^-4 = 1, 2.25, 0.125; y 2^-3: 1 -> 8, 1.5 -> 12, 0.35355 -> 2.83 -> 3.
  OneNode p;
  p.in("x", i8(-4, {3}, {16, 36, 2}));
  expect_codes(p.run("Sqrt", {"x"}, DType::Int8, -3), {3}, {8, 12, 3});
}

KERNEL_CASE(Log, LogfBetweenRescalings) {
  // x 2^-2 = 1, 2, 0.5; y 2^-4: 0 -> 0, 0.6931 -> 11.09 -> 11, -0.6931 -> -11.09 -> -11.
  OneNode p;
  p.in("x", i8(-2, {3}, {4, 8, 2}));
  expect_codes(p.run("Log", {"x"}, DType::Int8, -4), {3}, {0, 11, -11});
}

// ---- reduce.cpp
KERNEL_CASE(ReduceMean, FloatStepsAfterAnExactSum) {
  // x 2^-1 [[1,2,4],[-3,-3,-2]], mean over axis 1 (input), y 2^-2: fl(fl(7 * 0.5) / 3) * 4 =
  // 4.6666665 -> 5; -8 -> -5.33 -> -5. keepdims 1: [2, 1].
  OneNode p;
  p.in("x", i8(-1, {2, 3}, {1, 2, 4, -3, -3, -2})).constant("axes", i64({1}));
  expect_codes(p.run("ReduceMean", {"x", "axes"}, DType::Int8, -2), {2, 1}, {5, -5});
  // The opset-13 attribute form, keepdims 0, over the first axis: (1-3)/2 * 0.5 = -0.5 -> -2;
  // -0.25 -> -1; 0.5 -> 2.
  OneNode q;
  q.in("x", i8(-1, {2, 3}, {1, 2, 4, -3, -3, -2}));
  expect_codes(q.run("ReduceMean", {"x"}, DType::Int8, -2, {{"axes", V{0}}, {"keepdims", int64_t(0)}}), {3},
               {-2, -1, 2});
}

KERNEL_CASE(ReduceSum, ShiftAndRoundOfTheSum) {
  // Column sums -2, -1, 2 at 2^-1 -> y 2^0: -1, -0.5 -> 0, 1.
  OneNode p;
  p.in("x", i8(-1, {2, 3}, {1, 2, 4, -3, -3, -2})).constant("axes", i64({0}));
  expect_codes(p.run("ReduceSum", {"x", "axes"}, DType::Int8, 0), {1, 3}, {-1, 0, 1});
}

KERNEL_CASE(ReduceMax, CodesOnOneGrid) {
  OneNode p;
  p.in("x", i8(-1, {2, 3}, {1, 2, 4, -3, -3, -2})).constant("axes", i64({1}));
  expect_codes(p.run("ReduceMax", {"x", "axes"}, DType::Int8, -1), {2, 1}, {4, -2});
}

KERNEL_CASE(ReduceMin, CodesOnOneGrid) {
  // No axes: every element.
  OneNode p;
  p.in("x", i8(-1, {2, 3}, {1, 2, 4, -3, -3, -2}));
  expect_codes(p.run("ReduceMin", {"x"}, DType::Int8, -1, {{"keepdims", int64_t(0)}}), {}, {-3});
}

TEST(KernelReference, EspdlReducePatterns) {
  // ESP-DL's ReduceBase: after merging equal neighbours, R, KR, RK, RKR, KRK, KRKR, RKRK only.
  EXPECT_TRUE(espdl_reduce_supported({false, false, true}));        // [N, T, C] over C
  EXPECT_TRUE(espdl_reduce_supported({false, true, true, false}));  // NHWC over H, W
  EXPECT_FALSE(espdl_reduce_supported({true, false, true, false, true}));
}

// ---- movement.cpp (codes move unchanged)
KERNEL_CASE(Reshape, InferredDim) {
  OneNode p;
  p.in("x", i8(0, {2, 3}, {1, 2, 3, 4, 5, 6})).constant("shape", i64({3, -1}));
  expect_codes(p.run("Reshape", {"x", "shape"}, DType::Int8, 0), {3, 2}, {1, 2, 3, 4, 5, 6});
}
KERNEL_CASE(Flatten, Axis1) {
  OneNode p;
  p.in("x", i8(0, {2, 1, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8}));
  expect_codes(p.run("Flatten", {"x"}, DType::Int8, 0), {2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
}
KERNEL_CASE(Squeeze, AxesInput) {
  OneNode p;
  p.in("x", i8(0, {1, 3, 1}, {7, 8, 9})).constant("axes", i64({0, 2}));
  expect_codes(p.run("Squeeze", {"x", "axes"}, DType::Int8, 0), {3}, {7, 8, 9});
}
KERNEL_CASE(Unsqueeze, AxesInput) {
  OneNode p;
  p.in("x", i8(0, {3}, {7, 8, 9})).constant("axes", i64({0}));
  expect_codes(p.run("Unsqueeze", {"x", "axes"}, DType::Int8, 0), {1, 3}, {7, 8, 9});
}
KERNEL_CASE(Identity, Copies) {
  OneNode p;
  p.in("x", i8(-1, {2}, {-7, 9}));
  expect_codes(p.run("Identity", {"x"}, DType::Int8, -1), {2}, {-7, 9});
}
KERNEL_CASE(Transpose, Perm10) {
  // [[1,2,3],[4,5,6]]^T.
  OneNode p;
  p.in("x", i8(0, {2, 3}, {1, 2, 3, 4, 5, 6}));
  expect_codes(p.run("Transpose", {"x"}, DType::Int8, 0, {{"perm", V{1, 0}}}), {3, 2}, {1, 4, 2, 5, 3, 6});
}
KERNEL_CASE(Concat, Axis1) {
  OneNode p;
  p.in("a", i8(-2, {2, 2}, {1, 2, 3, 4})).in("b", i8(-2, {2, 1}, {5, 6}));
  expect_codes(p.run("Concat", {"a", "b"}, DType::Int8, -2, {{"axis", int64_t(1)}}), {2, 3}, {1, 2, 5, 3, 4, 6});
}
KERNEL_CASE(Slice, StartsEndsAxesSteps) {
  // x[1:5:2] of 10..14 = 11, 13.
  OneNode p;
  p.in("x", i8(0, {5}, {10, 11, 12, 13, 14}))
      .constant("starts", i64({1}))
      .constant("ends", i64({5}))
      .constant("axes", i64({0}))
      .constant("steps", i64({2}));
  expect_codes(p.run("Slice", {"x", "starts", "ends", "axes", "steps"}, DType::Int8, 0), {2}, {11, 13});
}
KERNEL_CASE(Gather, RowsWithNegativeIndex) {
  // rows 2, 0, -1 (= 2) of [[1,2],[3,4],[5,6]].
  OneNode p;
  p.in("x", i8(0, {3, 2}, {1, 2, 3, 4, 5, 6})).constant("idx", i64({2, 0, -1}));
  expect_codes(p.run("Gather", {"x", "idx"}, DType::Int8, 0), {3, 2}, {5, 6, 1, 2, 5, 6});
}
KERNEL_CASE(DepthToSpace, CrdOnePixel) {
  // NHWC [1,1,1,8] = 0..7, blocksize 2, CRD: channel c*4 + i*2 + j goes to pixel (i, j) of
  // channel c; output [1,2,2,2] in (h, w, c) order.
  OneNode p;
  p.in("x", i8(0, {1, 1, 1, 8}, {0, 1, 2, 3, 4, 5, 6, 7}));
  expect_codes(p.run("DepthToSpace", {"x"}, DType::Int8, 0, {{"blocksize", int64_t(2)}, {"mode", std::string("CRD")}}),
               {1, 2, 2, 2}, {0, 4, 1, 5, 2, 6, 3, 7});
}
KERNEL_CASE(DepthToSpace, DcrTwoPixels) {
  // NHWC [1,1,2,4]: pixels (10..13) and (20..23), blocksize 2, DCR, one output channel: depth
  // i*2 + j of pixel w goes to (i, 2w + j): rows [10,11,20,21] and [12,13,22,23].
  OneNode p;
  p.in("x", i8(0, {1, 1, 2, 4}, {10, 11, 12, 13, 20, 21, 22, 23}));
  expect_codes(p.run("DepthToSpace", {"x"}, DType::Int8, 0, {{"blocksize", int64_t(2)}}), {1, 2, 4, 1},
               {10, 11, 20, 21, 12, 13, 22, 23});
}
KERNEL_CASE(SpaceToDepth, TwoBlocks) {
  // NHWC [1,2,4,1] = 10h + w; blocksize 2: block w' gathers (i, 2w' + j) into depth i*2 + j.
  OneNode p;
  p.in("x", i8(0, {1, 2, 4, 1}, {0, 1, 2, 3, 10, 11, 12, 13}));
  expect_codes(p.run("SpaceToDepth", {"x"}, DType::Int8, 0, {{"blocksize", int64_t(2)}}), {1, 1, 2, 4},
               {0, 1, 10, 11, 2, 3, 12, 13});
}
KERNEL_CASE(InsertZeros, StrideAndOutputPadding) {
  // NHWC [1,2,2,1] = [[1,2],[3,4]], stride 2, output_padding [1, 0]: 2 + 1 + 1 = 4 rows, 3 columns.
  OneNode p;
  p.in("x", i8(-3, {1, 2, 2, 1}, {1, 2, 3, 4}));
  expect_codes(p.run("InsertZeros", {"x"}, DType::Int8, -3, {{"stride", V{2, 2}}, {"output_padding", V{1, 0}}}),
               {1, 4, 3, 1}, {1, 0, 2, 0, 0, 0, 3, 0, 4, 0, 0, 0});
}
KERNEL_CASE(Pad, ReflectEdgeConstant) {
  // [[1,2,3],[4,5,6]], pads: rows (0 before, 1 after), columns (2 before, 1 after).
  // reflect mirrors without the edge: row 2 -> row 0, columns -2, -1 -> 2, 1 and 3 -> 1.
  auto run = [](const std::string& mode) {
    OneNode p;
    p.in("x", i8(-2, {2, 3}, {1, 2, 3, 4, 5, 6})).constant("pads", i64({0, 2, 1, 1}));
    return p.run("Pad", {"x", "pads"}, DType::Int8, -2, {{"mode", mode}});
  };
  expect_codes(run("reflect"), {3, 6}, {3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5, 3, 2, 1, 2, 3, 2});
  expect_codes(run("edge"), {3, 6}, {1, 1, 1, 2, 3, 3, 4, 4, 4, 5, 6, 6, 4, 4, 4, 5, 6, 6});
  expect_codes(run("constant"), {3, 6}, {0, 0, 1, 2, 3, 0, 0, 0, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0});
}

// ---- resize.cpp
KERNEL_CASE(Resize, NearestAsymmetricFloor) {
  // [[1,2],[3,4]] x2: source index floor(i / 2).
  OneNode p;
  p.in("x", i8(-2, {1, 2, 2, 1}, {1, 2, 3, 4})).constant("scales", f32({4}, {1, 1, 2, 2}));
  expect_codes(p.run("Resize", {"x", "", "scales"}, DType::Int8, -2,
                     {{"mode", std::string("nearest")},
                      {"coordinate_transformation_mode", std::string("asymmetric")},
                      {"nearest_mode", std::string("floor")}}),
               {1, 4, 4, 1}, {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
}
KERNEL_CASE(Resize, LinearHalfPixel) {
  // [[0,1],[1,2]] (codes x 8 at 2^-3) x2, half_pixel: the weights along each axis are
  // 0, 0.25, 0.75, 1 (clamped at the borders) and the function is y + x, so code (a_i + a_j) * 8.
  OneNode p;
  p.in("x", i8(-3, {1, 2, 2, 1}, {0, 8, 8, 16})).constant("scales", f32({4}, {1, 1, 2, 2}));
  expect_codes(p.run("Resize", {"x", "", "scales"}, DType::Int8, -3,
                     {{"mode", std::string("linear")}, {"coordinate_transformation_mode", std::string("half_pixel")}}),
               {1, 4, 4, 1}, {0, 2, 6, 8, 2, 4, 8, 10, 6, 8, 12, 14, 8, 10, 14, 16});
}

KERNEL_CASE(Resize, LinearOnOnePixelRow) {
  // One row, [0, 1] (codes x 8 at 2^-3) x2 in width: row weights 0 on row -1 and 1 on row 0 (ESP-DL's
  // clamp at a 1-pixel axis), the column weights as above: 0, 2, 6, 8.
  OneNode p;
  p.in("x", i8(-3, {1, 1, 2, 1}, {0, 8})).constant("scales", f32({4}, {1, 1, 1, 2}));
  expect_codes(p.run("Resize", {"x", "", "scales"}, DType::Int8, -3,
                     {{"mode", std::string("linear")}, {"coordinate_transformation_mode", std::string("half_pixel")}}),
               {1, 1, 4, 1}, {0, 2, 6, 8});
}

KERNEL_CASE(StreamingCache, CarriesTheLastFramesBetweenRuns) {
  // window 3, frame axis 1, x [1, 2 frames, C=2]: run 1 from reset, output = 2 zero frames then
  // x; run 2 sees the last 2 frames of run 1's output (= run 1's input) before its own.
  OneNode p;
  p.in("x", i8(-1, {1, 2, 2}, {1, 2, 3, 4}));
  A attrs{{"window_size", int64_t(3)}, {"frame_axis", int64_t(1)}};
  TensorMap state;
  expect_codes(p.run("StreamingCache", {"x"}, DType::Int8, -1, attrs), {1, 4, 2}, {0, 0, 0, 0, 1, 2, 3, 4});
  run_program(p.g, p.feeds, false, &state);  // run 1 with state kept
  p.feeds["x"] = i8(-1, {1, 2, 2}, {5, 6, 7, 8});
  expect_codes(run_program(p.g, p.feeds, false, &state).at("y"), {1, 4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  expect_codes(run_program(p.g, p.feeds, false, &state).at("y"), {1, 4, 2}, {5, 6, 7, 8, 5, 6, 7, 8});
  EXPECT_EQ(state.at("node").shape, (Shape{1, 2, 2}));
}

// ---- quantize.cpp
KERNEL_CASE(QuantizeLinear, RoundHalfUpAndSaturate) {
  // x 4: 1.2 -> 1, -1.04 -> -1, 0.5 -> 1, -0.5 -> 0, 400 -> 127.
  OneNode p;
  p.in("x", f32({5}, {0.3f, -0.26f, 0.125f, -0.125f, 100.f}));
  expect_codes(p.run("QuantizeLinear", {"x"}, DType::Int8, -2), {5}, {1, -1, 1, 0, 127});
}
KERNEL_CASE(RequantizeLinear, RightShiftRounds) {
  // 2^-3 -> 2^-2: 2.5 -> 3, -2.5 -> -2, 3, 63.5 -> 64.
  OneNode p;
  p.in("x", i8(-3, {4}, {5, -5, 6, 127}));
  expect_codes(p.run("RequantizeLinear", {"x"}, DType::Int8, -2), {4}, {3, -2, 3, 64});
}
KERNEL_CASE(DequantizeLinear, CodesTimesScale) {
  OneNode p;
  p.in("x", i8(-2, {2}, {3, -4}));
  IntTensor y = p.run("DequantizeLinear", {"x"}, DType::Float32, 0);
  EXPECT_EQ(y.floats, (std::vector<float>{0.75f, -1.f}));
}

TEST(KernelReference, EveryIntegerKernelHasACase) {
  std::vector<std::string> missing;
  for (const std::string& op : kernel_op_types())
    if (!covered().count(op)) missing.push_back(op);
  EXPECT_TRUE(missing.empty()) << "integer kernels without a hand-computed case: " << ::testing::PrintToString(missing);
  EXPECT_GE(covered().size(), 33u);
}

}  // namespace
