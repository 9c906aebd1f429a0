#!/usr/bin/python3
"""Mutates small ONNX models (ONNX's node tests of the index/control-flow/activation ops, and the
opset-18+ fixtures) and runs `edgequant info` and `edgequant run` on each. Bad input must end in
exit 0 or 2 with one error line; anything else (1, a signal, a timeout) is printed with the kept
model. Usage: /usr/bin/python3 tools/fuzz/mutate_models.py build/edgequant [COUNT] [SEED]
"""
import glob, os, random, subprocess, sys, tempfile
import numpy as np
import onnx
from onnx import numpy_helper, TensorProto
EQ = os.path.abspath(sys.argv[1])
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300
random.seed(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
WORK = tempfile.mkdtemp(prefix="eq_fuzz_")
base = "/usr/share/libonnx-testdata/data/node/"
pats = ["test_top_k", "test_gathernd", "test_scatternd", "test_onehot", "test_einsum", "test_loop11", "test_scan9",
        "test_depthtospace", "test_spacetodepth", "test_gather_elements", "test_scatter_elements", "test_cumsum",
        "test_tril", "test_triu", "test_mod_mixed", "test_hardmax", "test_reduce_l2", "test_reduce_log_sum", "test_mvn",
        "test_eyelike", "test_nonzero", "test_shrink", "test_celu", "test_thresholdedrelu", "test_range_float",
        "test_size", "test_castlike", "test_lrn", "test_gridsample", "test_nonmaxsuppression", "test_dft", "test_stft",
        "test_hannwindow", "test_hammingwindow", "test_blackmanwindow", "test_melweightmatrix", "test_unique",
        "test_maxunpool", "test_bitshift_left_uint8", "test_compress", "test_reversesequence", "test_det",
        "test_resize_", "test_roialign", "test_qlinear", "test_convinteger",
        "test_basic_convinteger", "test_matmulinteger", "test_dynamicquantizelinear", "test_scatter_with", "test_nllloss",
        "test_sce_"]
models = [m for p in pats for m in glob.glob(base + p + "*/model.onnx")]
models += glob.glob(os.path.join(ROOT, "tests", "fixtures", "opsets", "*.onnx"))
np_types = {TensorProto.FLOAT: np.float32, TensorProto.INT64: np.int64, TensorProto.INT32: np.int32, TensorProto.BOOL: np.bool_,
            TensorProto.DOUBLE: np.float64, TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8, TensorProto.INT16: np.int16}

def mutate(m):
    g = m.graph
    k = random.randrange(6)
    if k == 0 and g.node:  # an int attribute
        n = random.choice(g.node)
        ints = [a for a in n.attribute if a.type == onnx.AttributeProto.INT]
        if ints: random.choice(ints).i = random.choice([-5, -1, 0, 1, 2, 7, 1 << 20])
    elif k == 1 and g.initializer:
        t = random.choice(g.initializer)
        if t.data_type in (21, 22):  # uint4/int4 (opset 21; unknown to onnx 1.12): flip a packed byte
            data = bytearray(t.raw_data) if t.raw_data else bytearray(b & 0xFF for b in t.int32_data)
            if data:
                data[random.randrange(len(data))] = random.randrange(256)
                if random.random() < 0.3: data = data[:-1]  # a truncated tensor
            t.ClearField("int32_data")
            t.raw_data = bytes(data)
            return m
        a = numpy_helper.to_array(t).copy()
        if a.size:
            values = [-7, -1, 0, 3, 1000]
            if a.dtype.kind == "f": values += [float("nan"), float("inf"), -1e30]  # non-finite weights, scales, rois
            a.flat[random.randrange(a.size)] = random.choice(values)
        t.CopyFrom(numpy_helper.from_array(a, t.name))
    elif k == 2 and g.input:  # a declared dim
        d = random.choice(g.input).type.tensor_type.shape.dim
        if d: random.choice(d).dim_value = random.choice([0, 1, 2, 5])
    elif k == 3 and g.node:  # drop an optional input
        n = random.choice(g.node)
        if len(n.input) > 1: n.input[-1] = ""
    elif k == 4 and g.node:  # an ints attribute
        n = random.choice(g.node)
        ints = [a for a in n.attribute if a.type == onnx.AttributeProto.INTS]
        if ints:
            a = random.choice(ints)
            if a.ints: a.ints[random.randrange(len(a.ints))] = random.choice([-3, 0, 2, 9])
    else:  # a different op type
        if g.node: random.choice(g.node).op_type = random.choice(["TopK", "GatherND", "Einsum", "OneHot", "CumSum", "Trilu", "Col2Im"])
    return m

def inputs_for(m, path):
    arrays = {}
    inits = {t.name for t in m.graph.initializer}
    for i in m.graph.input:
        if i.name in inits: continue
        tt = i.type.tensor_type
        if tt.elem_type not in np_types: return None
        shape = [d.dim_value if d.dim_value > 0 else random.choice([1, 2, 3]) for d in tt.shape.dim]
        arrays[i.name] = (np.random.default_rng(1).normal(0, 2, shape) * 3).astype(np_types[tt.elem_type])
    np.savez(path, **arrays)
    return path

bad = 0
counts = {}
for it in range(N):
    src = random.choice(models)
    m = onnx.load(src)
    for _ in range(random.randint(1, 3)): m = mutate(m)
    mp = f"{WORK}/m{it % 50}.onnx"
    onnx.save(m, mp)
    inp = inputs_for(m, f"{WORK}/in{it % 50}.npz")
    cmds = [[EQ, "info", mp]]
    if inp: cmds.append([EQ, "run", mp, "-i", inp, "-o", f"{WORK}/out{it % 50}.npz"])
    for c in cmds:
        try:
            r = subprocess.run(c, capture_output=True, text=True, timeout=60)
            code = r.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        counts[code] = counts.get(code, 0) + 1
        if code not in (0, 2):
            bad += 1
            keep = f"{WORK}/bad{bad}.onnx"
            onnx.save(m, keep)
            print("BAD", code, src, c[1], keep, (r.stderr if code != "timeout" else "")[-300:].strip())
print("runs by exit status:", counts, "bad:", bad)
