"""Turn a QDQ int8 expression model into the float32 graph of the same weights.

    engagement train float-expression int8.onnx --name expression-cnn.v4 [--models-dir models]

writes models/expression-cnn.v4.onnx from the int8 file and records its new sha256 in
models/models.json (the entry's other fields stay).

ONNX Runtime fuses a QDQ graph into integer kernels whose results depend on the CPU: on x86-64
with AVX2 and without AVX-512 VNNI its u8s8 kernels add pairs of 8-bit products into 16 bits and
saturate, and about one FER2013 face in ten changes label. Even where they do not saturate, the
fused kernels round each layer's requantization differently from the graph they fuse (up to
0.007 in a probability here). A float graph answers the same on every CPU, to float rounding.

The weights stay exactly the int8 file's (each dequantized: (q - zero_point) * scale), and each
activation keeps the range its 8 bits gave it (a Clip to the calibrated range: the quantizer
folded the ReLUs into those ranges, so a range starting at 0 is the ReLU); only the rounding of
activations to 256 steps is gone. The training checkpoints are not in the repository; the int8 files are, and this needs only them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from engagement.core.errors import EngagementError
from engagement.core.registry import model_record, register, sha256_file


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int) -> np.ndarray:
    """ONNX DequantizeLinear in float64, rounded once to float32: (q - zero_point) * scale."""
    shape = [1] * q.ndim
    if scale.ndim == 1 and q.ndim > 0:
        shape[axis] = -1
    zp = np.zeros(1) if zero_point is None else zero_point.astype(np.float64).reshape(shape)
    return ((q.astype(np.float64) - zp) * scale.astype(np.float64).reshape(shape)).astype(np.float32)


def axis_of(node: onnx.NodeProto) -> int:
    """A (De)QuantizeLinear node's channel axis (ONNX's default: 1)."""
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def _clip_for(init: dict, q: onnx.NodeProto, new_init: list) -> onnx.NodeProto:
    """A Clip of q's input to the range q can represent (its bounds appended to new_init)."""
    scale = numpy_helper.to_array(init[q.input[1]])
    zp = numpy_helper.to_array(init[q.input[2]])
    if scale.size != 1:
        raise ValueError(f"QuantizeLinear {q.name!r} is per-channel; only per-tensor activations are handled")
    info = np.iinfo(zp.dtype)
    names = [f"{q.input[0]}_float_min", f"{q.input[0]}_float_max"]
    for name, step in zip(names, (info.min, info.max)):
        new_init.append(numpy_helper.from_array(np.array((step - float(zp)) * float(scale), np.float32), name))
    return onnx.helper.make_node("Clip", [q.input[0], *names], [f"{q.input[0]}_clipped"], name=f"{q.name}_clip")


def float_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every constant DequantizeLinear folded into a float initializer and every
    activation QuantizeLinear -> DequantizeLinear pair replaced by a Clip to its range. Raises
    ValueError for a graph this does not cover (a Q that feeds anything but a DQ, and so on)."""
    graph = model.graph
    init = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    nodes, new_init, renamed = [], [], {}
    for node in list(graph.node):
        if node.op_type == "DequantizeLinear" and node.input[0] in init:
            q = numpy_helper.to_array(init[node.input[0]])
            scale = numpy_helper.to_array(init[node.input[1]])
            zp = numpy_helper.to_array(init[node.input[2]]) if len(node.input) > 2 and node.input[2] else None
            new_init.append(numpy_helper.from_array(dequantize(q, scale, zp, axis_of(node)), node.output[0]))
        elif node.op_type == "QuantizeLinear":
            readers = [n for n in graph.node if node.output[0] in n.input]
            if node.output[0] in outputs or any(n.op_type != "DequantizeLinear" for n in readers):
                raise ValueError(f"QuantizeLinear {node.name!r} feeds something other than DequantizeLinear")
            clip = _clip_for(init, node, new_init)
            nodes.append(clip)
            renamed.update({dq.output[0]: clip.output[0] for dq in readers})
        elif node.op_type == "DequantizeLinear":
            if node.input[0] not in {o for n in graph.node if n.op_type == "QuantizeLinear" for o in n.output}:
                raise ValueError(f"DequantizeLinear {node.name!r} reads neither a constant nor a QuantizeLinear")
            if node.output[0] in outputs:
                raise ValueError(f"DequantizeLinear {node.name!r} is a graph output")
        else:
            nodes.append(node)
    for node in nodes:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(new_init)
    used = {name for n in graph.node for name in n.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model


def float_from_int8(src: Path, out: Path) -> Path:
    """Write the float32 graph of the int8 model `src` to `out`, metadata kept, the int8 file's
    sha256 recorded, the quantization note replaced by what the file now is."""
    model = float_graph(onnx.load(str(src)))
    meta = {p.key: p.value for p in model.metadata_props}
    note = meta.pop("quantization", "int8")
    meta.pop("float_model_sha256", None)  # the float file that made the int8 one is not this one
    meta["precision"] = (f"float32: the weights of the int8 file (sha256 in int8_model_sha256; {note}) "
                         "dequantized, activations not quantized")
    meta["int8_model_sha256"] = sha256_file(src)
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def replace_registered(src: Path, name: str, models_dir: Path) -> Path:
    """Write the float graph of int8 file `src` as registered model `name`'s file in models_dir
    and record its sha256; the entry's labels, citations and card stay. Returns the file."""
    record = model_record(name, models_dir)
    if record.kind != "expression":
        raise EngagementError(f"{name} is a {record.kind} model, not an expression model")
    try:
        source = onnx.load(str(src))
    except FileNotFoundError:
        raise EngagementError(f"no such file: {src}") from None
    except Exception as e:  # onnx raises DecodeError and others for a file that is no model
        raise EngagementError(f"cannot read {src} as an ONNX model: {e}") from None
    if not any(n.op_type == "QuantizeLinear" for n in source.graph.node):
        raise EngagementError(f"{src} has no QuantizeLinear node: not an int8 QDQ model")
    out = Path(models_dir) / record.file
    tmp = out.with_suffix(".float.tmp")
    try:
        float_from_int8(src, tmp)
    except ValueError as e:
        tmp.unlink(missing_ok=True)
        raise EngagementError(f"{src}: {e}") from None
    tmp.replace(out)
    register(Path(models_dir), replace(record, sha256=sha256_file(out)))
    return out
