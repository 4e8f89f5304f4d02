"""facenet's Inception-ResNet-v1 in onnxruntime, for the side-by-side speed figures (not part of CI).

Builds the ONNX graph from a facegpu `.safetensors` model (`facegpu convert --model <facenet model>
--out m.safetensors`), batch norms folded into the convs as onnxruntime's own optimizer would, and times
onnxruntime's CPU provider at batch 1 and 32 on inputs of 160x160. Prints one JSON object. Needs numpy,
onnx and onnxruntime (a throwaway venv; see benches/compare_cpu.sh).

    python benches/onnxruntime_bench.py m.safetensors [--threads N] [--reps 5] [--check faces.npy]
"""
import argparse
import json
import struct
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort

ROOT = "InceptionResnetV1"
EPS = 0.001


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": np.float32, "F16": np.float16}[t["dtype"]]
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dtype).astype(np.float32).reshape(t["shape"])
    return out


# The network as facenet's models/inception_resnet_v1.py defines it (src/arch/inception_resnet_v1.rs).
def conv(name, k, cout, stride=1, pad="SAME"):
    return (name, k, cout, stride, pad)


STEM = [conv("Conv2d_1a_3x3", (3, 3), 32, 2, "VALID"), conv("Conv2d_2a_3x3", (3, 3), 32, 1, "VALID"),
        conv("Conv2d_2b_3x3", (3, 3), 64), "MaxPool_3a_3x3", conv("Conv2d_3b_1x1", (1, 1), 80, 1, "VALID"),
        conv("Conv2d_4a_3x3", (3, 3), 192, 1, "VALID"), conv("Conv2d_4b_3x3", (3, 3), 256, 2, "VALID")]
B35 = [("Branch_0", [conv("Conv2d_1x1", (1, 1), 32)]),
       ("Branch_1", [conv("Conv2d_0a_1x1", (1, 1), 32), conv("Conv2d_0b_3x3", (3, 3), 32)]),
       ("Branch_2", [conv("Conv2d_0a_1x1", (1, 1), 32), conv("Conv2d_0b_3x3", (3, 3), 32), conv("Conv2d_0c_3x3", (3, 3), 32)])]
M6A = [("Branch_0", [conv("Conv2d_1a_3x3", (3, 3), 384, 2, "VALID")]),
       ("Branch_1", [conv("Conv2d_0a_1x1", (1, 1), 192), conv("Conv2d_0b_3x3", (3, 3), 192), conv("Conv2d_1a_3x3", (3, 3), 256, 2, "VALID")])]
B17 = [("Branch_0", [conv("Conv2d_1x1", (1, 1), 128)]),
       ("Branch_1", [conv("Conv2d_0a_1x1", (1, 1), 128), conv("Conv2d_0b_1x7", (1, 7), 128), conv("Conv2d_0c_7x1", (7, 1), 128)])]
M7A = [("Branch_0", [conv("Conv2d_0a_1x1", (1, 1), 256), conv("Conv2d_1a_3x3", (3, 3), 384, 2, "VALID")]),
       ("Branch_1", [conv("Conv2d_0a_1x1", (1, 1), 256), conv("Conv2d_1a_3x3", (3, 3), 256, 2, "VALID")]),
       ("Branch_2", [conv("Conv2d_0a_1x1", (1, 1), 256), conv("Conv2d_0b_3x3", (3, 3), 256), conv("Conv2d_1a_3x3", (3, 3), 256, 2, "VALID")])]
B8 = [("Branch_0", [conv("Conv2d_1x1", (1, 1), 192)]),
      ("Branch_1", [conv("Conv2d_0a_1x1", (1, 1), 192), conv("Conv2d_0b_1x3", (1, 3), 192), conv("Conv2d_0c_3x1", (3, 1), 192)])]


class Builder:
    def __init__(self, w):
        self.w, self.nodes, self.inits, self.n = w, [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base, array):
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def conv(self, x, scope, spec, relu=True, bias_kind=False):
        name, k, cout, stride, pad = spec
        full = f"{scope}/{name}"
        w = self.w[f"{full}/weights"]
        if bias_kind:
            b = self.w[f"{full}/biases"]
        else:
            scale = 1.0 / np.sqrt(self.w[f"{full}/BatchNorm/moving_variance"] + EPS)
            b = self.w[f"{full}/BatchNorm/beta"] - self.w[f"{full}/BatchNorm/moving_mean"] * scale
            w = w * scale
        wt = self.const("w", np.transpose(w, (3, 2, 0, 1)))  # HWIO -> OIHW
        bt = self.const("b", b)
        y = self.name("conv")
        self.nodes.append(helper.make_node("Conv", [x, wt, bt], [y], kernel_shape=list(k), strides=[stride, stride],
                                           auto_pad="SAME_UPPER" if pad == "SAME" else "VALID"))
        if relu:
            r = self.name("relu")
            self.nodes.append(helper.make_node("Relu", [y], [r]))
            return r
        return y

    def pool(self, x):
        y = self.name("pool")
        self.nodes.append(helper.make_node("MaxPool", [x], [y], kernel_shape=[3, 3], strides=[2, 2]))
        return y

    def concat(self, parts):
        y = self.name("concat")
        self.nodes.append(helper.make_node("Concat", parts, [y], axis=1))
        return y

    def branches(self, x, scope, branches):
        outs = []
        for b, chain in branches:
            h = x
            for spec in chain:
                h = self.conv(h, f"{scope}/{b}", spec)
            outs.append(h)
        return outs

    def block(self, x, scope, branches, cin, scale, relu):
        mixed = self.concat(self.branches(x, scope, branches))
        up = self.conv(mixed, scope, ("Conv2d_1x1", (1, 1), cin, 1, "SAME"), relu=False, bias_kind=True)
        s = self.const("scale", np.array([scale]))
        m, y = self.name("mul"), self.name("add")
        self.nodes += [helper.make_node("Mul", [up, s], [m]), helper.make_node("Add", [x, m], [y])]
        if relu:
            r = self.name("relu")
            self.nodes.append(helper.make_node("Relu", [y], [r]))
            return r
        return y

    def build(self):
        h = "images"
        for spec in STEM:
            h = self.pool(h) if spec == "MaxPool_3a_3x3" else self.conv(h, ROOT, spec)
        for i in range(1, 6):
            h = self.block(h, f"{ROOT}/Repeat/block35_{i}", B35, 256, 0.17, True)
        h = self.concat(self.branches(h, f"{ROOT}/Mixed_6a", M6A) + [self.pool(h)])
        for i in range(1, 11):
            h = self.block(h, f"{ROOT}/Repeat_1/block17_{i}", B17, 896, 0.10, True)
        h = self.concat(self.branches(h, f"{ROOT}/Mixed_7a", M7A) + [self.pool(h)])
        for i in range(1, 6):
            h = self.block(h, f"{ROOT}/Repeat_2/block8_{i}", B8, 1792, 0.20, True)
        h = self.block(h, f"{ROOT}/Block8", B8, 1792, 1.0, False)
        g, f = self.name("gap"), self.name("flat")
        self.nodes += [helper.make_node("GlobalAveragePool", [h], [g]), helper.make_node("Flatten", [g], [f])]
        full = f"{ROOT}/Bottleneck"
        w = self.w[f"{full}/weights"]
        scale = 1.0 / np.sqrt(self.w[f"{full}/BatchNorm/moving_variance"] + EPS)
        b = self.w[f"{full}/BatchNorm/beta"] - self.w[f"{full}/BatchNorm/moving_mean"] * scale
        pre = self.name("prelogits")
        self.nodes.append(helper.make_node("Gemm", [f, self.const("w", w * scale), self.const("b", b)], [pre]))
        self.nodes.append(helper.make_node("LpNormalization", [pre], ["embeddings"], axis=1, p=2))
        graph = helper.make_graph(self.nodes, "inception_resnet_v1",
                                  [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, 160, 160])],
                                  [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["n", w.shape[1]])],
                                  self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--check", help="a float32 .npy of standardized faces [n,160,160,3] to embed and print")
    a = p.parse_args()
    model = Builder(read_safetensors(a.model)).build()
    opts = ort.SessionOptions()
    if a.threads:
        opts.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    out = {"onnxruntime": ort.__version__}
    rng = np.random.default_rng(0)
    for batch in (1, 32):
        x = rng.standard_normal((batch, 3, 160, 160), dtype=np.float32)
        sess.run(None, {"images": x})
        times = []
        for _ in range(a.reps):
            t = time.perf_counter()
            sess.run(None, {"images": x})
            times.append(time.perf_counter() - t)
        med = sorted(times)[len(times) // 2]
        out[f"embed_images_per_s_batch{batch}"] = batch / med
        out[f"embed_ms_batch{batch}"] = med * 1e3
    if a.check:
        faces = np.load(a.check).transpose(0, 3, 1, 2).astype(np.float32)
        out["check_embeddings"] = sess.run(None, {"images": faces})[0].tolist()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
