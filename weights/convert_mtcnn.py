#!/usr/bin/env python3
"""Converts facenet's MTCNN weights (det1.npy, det2.npy, det3.npy) into weights/mtcnn.safetensors.

Usage: python3 weights/convert_mtcnn.py DIR_WITH_DET_NPY weights/mtcnn.safetensors

Standard library only: no numpy, no TensorFlow. Each det*.npy is a 0-d object array holding a pickled
(Python 2) dict {layer: {"weights" | "biases" | "alpha": float32 array}}; the unpickler below maps numpy's
array reconstruction onto plain (shape, bytes) records.

facenet feeds every network its input with H and W swapped (the weights come from a column-major Caffe
model). facegpu feeds images as they are, so this converter transposes once, here:
  - conv kernels [kh, kw, cin, cout] become [kw, kh, cin, cout];
  - the first fully connected layer after the last conv (RNet conv4, ONet conv5) reads a flattened
    [W, H, C] map in facenet; its rows are reordered to flatten [H, W, C], and it is stored as a conv
    kernel [H, W, C, out] that covers the whole map (a VALID conv with a 1x1 output);
  - later fully connected layers are stored as 1x1 conv kernels [1, 1, in, out].
With these, an NHWC forward over the image as it is gives exactly facenet's outputs.

Tensor names: "<net>/<layer>/<weights|biases|alpha>", net in pnet, rnet, onet; layer names are facenet's
(PNet "PReLU1".."PReLU3", RNet/ONet "prelu1".., "conv4-1", "conv5-2", ...).
"""
import json
import pickle
import struct
import sys


class Dtype:
    def __init__(self, name, *args):
        self.name = name

    def __setstate__(self, state):
        pass


class Array:
    def __init__(self, *args):
        self.shape, self.dtype, self.fortran, self.data = (), None, False, None

    def __setstate__(self, state):
        _, self.shape, self.dtype, self.fortran, self.data = state


def reconstruct(cls, shape, typecode):
    return Array()


class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if name == "_reconstruct":
            return reconstruct
        if name == "ndarray":
            return Array
        if name == "dtype":
            return Dtype
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")


def load_npy(path):
    raw = open(path, "rb").read()
    if raw[:6] != b"\x93NUMPY":
        sys.exit(f"{path}: not a .npy file")
    major = raw[6]
    header_len = struct.unpack("<H" if major == 1 else "<I", raw[8:10] if major == 1 else raw[8:12])[0]
    start = (10 if major == 1 else 12) + header_len
    outer = Unpickler(__import__("io").BytesIO(raw[start:]), encoding="latin1").load()
    layers = outer.data[0]
    out = {}
    for layer, params in layers.items():
        for key, arr in params.items():
            if arr.dtype.name != "f4":
                sys.exit(f"{path}: {layer}/{key} is {arr.dtype.name}, expected float32")
            data = arr.data.encode("latin1") if isinstance(arr.data, str) else bytes(arr.data)
            values = list(struct.unpack(f"<{len(data) // 4}f", data))
            if arr.fortran:
                values = fortran_to_c(list(arr.shape), values)
            out[(layer, key)] = (list(arr.shape), values)
    return out


def fortran_to_c(shape, values):
    """Column-major (some of facenet's last layers are pickled that way) to row-major."""
    out = [0.0] * len(values)
    for dst in range(len(values)):
        rest, src, stride = dst, 0, 1
        index = []
        for n in reversed(shape):
            index.append(rest % n)
            rest //= n
        for i, n in zip(reversed(index), shape):
            src += i * stride
            stride *= n
        out[dst] = values[src]
    return out


def transpose_hw(shape, values):
    kh, kw, ci, co = shape
    out = [0.0] * len(values)
    for y in range(kh):
        for x in range(kw):
            for c in range(ci * co):
                out[((x * kh + y) * ci * co) + c] = values[((y * kw + x) * ci * co) + c]
    return [kw, kh, ci, co], out


def fc_as_conv(shape, values, hwc):
    """Rows flattened [W, H, C] (facenet's transposed map) -> conv kernel [H, W, C, out]."""
    h, w, c = hwc
    rows, cols = shape
    assert rows == h * w * c, (shape, hwc)
    out = [0.0] * len(values)
    for y in range(h):
        for x in range(w):
            for ch in range(c):
                src = ((x * h + y) * c + ch) * cols
                dst = ((y * w + x) * c + ch) * cols
                out[dst:dst + cols] = values[src:src + cols]
    return [h, w, c, cols], out


# The map each network's first fully connected layer flattens (H, W, C).
FIRST_FC = {"rnet": ("conv4", (3, 3, 64)), "onet": ("conv5", (3, 3, 128))}


def convert(net, tensors):
    out = {}
    first_fc = FIRST_FC.get(net)
    for (layer, key), (shape, values) in sorted(tensors.items()):
        if key == "weights" and len(shape) == 4:
            shape, values = transpose_hw(shape, values)
        elif key == "weights" and len(shape) == 2:
            if first_fc and layer == first_fc[0]:
                shape, values = fc_as_conv(shape, values, first_fc[1])
            else:
                shape = [1, 1] + shape
        out[f"{net}/{layer}/{key}"] = (shape, values)
    return out


def save_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        shape, values = tensors[name]
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path + ".partial", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    __import__("os").replace(path + ".partial", path)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    tensors = {}
    for i, net in enumerate(["pnet", "rnet", "onet"], start=1):
        tensors.update(convert(net, load_npy(f"{src}/det{i}.npy")))
    metadata = {
        "format": "facegpu-mtcnn-1",
        "source": "facenet align/det1.npy det2.npy det3.npy (MIT; Zhang et al. MTCNN)",
        "layout": "NHWC input as is (facenet's H/W transposition folded into the weights); convs HWIO",
    }
    save_safetensors(dst, tensors, metadata)
    print(f"wrote {len(tensors)} tensors to {dst}")


if __name__ == "__main__":
    main()
