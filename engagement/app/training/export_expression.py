"""Export a trained expression checkpoint to ONNX with its metadata, and register it.

    engagement train export-expression --ckpt runs/expr-v1/best.pt --version 1

writes models/expression-cnn.v1.onnx, checks ONNX Runtime against torch, and records the file's
sha256 in models/models.json (the runtime refuses a file whose hash does not match).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from engagement.app.training.expression_data import load_fer2013, normalise, split_arrays
from engagement.app.training.expression_nets import (
    INPUT_SIZE,
    LABELS,
    PIXEL_MEAN,
    PIXEL_STD,
    ExportWrapper,
    load_checkpoint_model,
)
from engagement.app.training.expression_train import git_commit
from engagement.core.registry import InputSpec, ModelRecord, sha256_file
from engagement.core.registry import register as register_record

INPUT_NAME = "pixels"
OUTPUT_NAME = "probs"
DATA_CITATION = (
    "Goodfellow, I. J. et al. (2013). Challenges in Representation Learning: A report on three "
    "machine learning contests. ICONIP 2013 / ICML 2013 Workshop. FER2013 dataset (Training split "
    "for training, PublicTest split for checkpoint selection)."
)
# The citations of models.json; each model card repeats them word for word (a test checks).
CITATION_FER2013 = (
    "Goodfellow, I. J. et al. (2013), Challenges in Representation Learning: A report on three machine "
    "learning contests"
)
CITATION_FERPLUS = (
    "Barsoum, E., Zhang, C., Canton Ferrer, C. & Zhang, Z. (2016), Training deep networks for facial "
    "expression recognition with crowd-sourced label distribution"
)
DATA_TERMS = (
    "FER2013 states no license; its authors ask that the paper above be cited. "
    "Weights are derived from it; see the model card."
)


def export_onnx(
    net: torch.nn.Module,
    path: Path,
    version: str,
    tta_flip: bool = True,
    extra_meta: dict[str, str] | None = None,
) -> Path:
    """Export `net` (a normalised-input logits model) wrapped so the file takes 0..255 pixels."""
    wrapper = ExportWrapper(net.eval(), tta_flip=tta_flip).eval()
    dummy = torch.zeros(2, 1, INPUT_SIZE, INPUT_SIZE)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        wrapper,
        (dummy,),
        str(path),
        dynamo=False,  # dynamo=True needs onnxscript, which the training env does not carry
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=17,
    )
    model = onnx.load(str(path))
    meta = {
        "name": "expression-cnn",
        "version": version,  # the file is models/expression-cnn.v<version>.onnx
        "labels": json.dumps(list(LABELS)),
        "input_size": str(INPUT_SIZE),
        "input_format": (
            f"float32 NCHW (N,1,{INPUT_SIZE},{INPUT_SIZE}) gray pixels in 0..255, face aligned like "
            "FER2013 (engagement.vision.expression.align_face)"
        ),
        "normalisation": f"inside the graph: x/255 then (x - {PIXEL_MEAN}) / {PIXEL_STD}",
        "output": f"float32 (N,{len(LABELS)}) softmax probabilities in label order",
        "tta": "hflip-average" if tta_flip else "none",
        "data_citation": DATA_CITATION,
        "data_terms": DATA_TERMS,
        "training_commit": git_commit(),
    }
    meta.update(extra_meta or {})
    del model.metadata_props[:]
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)
    model.doc_string = "Facial expression classifier (FER2013, 7 classes). See the model card."
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def check_against_torch(net: torch.nn.Module, path: Path, tta_flip: bool = True, n: int = 5, seed: int = 0) -> float:
    """Max |ORT - torch| on random pixel batches; raises if above 1e-4."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 1, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    with torch.no_grad():
        ref = ExportWrapper(net.eval(), tta_flip=tta_flip)(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    err = float(np.abs(got - ref).max())
    if err > 1e-4:
        raise RuntimeError(f"ONNX Runtime differs from torch by {err:.2e} (> 1e-4)")
    return err


def quantize_int8(fp32_path: Path, out_path: Path, calib_pixels: np.ndarray) -> Path:
    """Static int8 quantization (QDQ, per-channel weights) calibrated on FER2013 Training faces.

    On CPUs with VNNI/AMX, ONNX Runtime runs the int8 graph 3-4x faster than fp32 at a quarter
    of the size, but its fused integer kernels answer differently on other CPUs (they saturate
    on AVX2 without VNNI): ship `expression_float.float_from_int8` of this file, not this file.
    The metadata of the fp32 file is copied over (quantization drops it). Only the
    convolutions, ReLUs (folded into the activation range) and max-pools are quantized: the head
    (one small Gemm) and the softmax stay float, else the probabilities come out in steps of
    1/255 and rows stop summing to 1.
    """
    # The quantization tool loads its own heavy modules (and onnx's shape inference); only
    # --int8 needs it.
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = [{INPUT_NAME: calib_pixels[i : i + 32, None].astype(np.float32)} for i in range(0, len(calib_pixels), 32)]

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self):
            return next(self._it, None)

    pre = out_path.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32_path), str(pre))
    quantize_static(
        str(pre),
        str(out_path),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv", "Relu", "MaxPool"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    pre.unlink(missing_ok=True)
    src = onnx.load(str(fp32_path))
    model = onnx.load(str(out_path))
    del model.metadata_props[:]
    for entry in src.metadata_props:
        new = model.metadata_props.add()
        new.key, new.value = entry.key, entry.value
    extra = {"quantization": "int8 static QDQ, per-channel weights, MinMax calibration on "
             f"{len(calib_pixels)} FER2013 Training faces", "float_model_sha256": sha256_file(fp32_path)}
    for k, v in extra.items():
        new = model.metadata_props.add()
        new.key, new.value = k, v
    model.doc_string = src.doc_string
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path


def fit_temperature(net: torch.nn.Module, pixels: np.ndarray, labels: np.ndarray, tta_flip: bool) -> float:
    """The temperature T (0.30..3.00, steps of 0.01) whose softmax(logits / T) gives the lowest
    negative log-likelihood of `labels` through the exported graph (mirror average included).

    A distilled network learns its teachers' spread-out probabilities and comes out
    under-confident; dividing its logits by T < 1 restores calibration without changing any
    prediction's top class.
    """
    net = net.eval()
    x = normalise(torch.from_numpy(pixels))
    with torch.no_grad():
        passes = [net(x)] + ([net(torch.flip(x, dims=[3]))] if tta_flip else [])
    rows = torch.arange(len(labels))
    target = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    grid = np.round(np.arange(0.30, 3.001, 0.01), 2)
    nll = []
    for t in grid:
        probs = sum(torch.softmax(logits / float(t), dim=1) for logits in passes) / len(passes)
        nll.append(float(-torch.log(probs[rows, target].clamp_min(1e-12)).mean()))
    return float(grid[int(np.argmin(nll))])


def fold_temperature(net: torch.nn.Module, temperature: float) -> torch.nn.Module:
    """`net` with its classifier divided by `temperature`: the graph stays the same shape."""
    head = net.head[-1]
    with torch.no_grad():
        head.weight.div_(temperature)
        head.bias.div_(temperature)
    return net


def register(models_dir: Path, name: str, file: Path, version: str, ferplus: bool) -> ModelRecord:
    """Record `name` in models_dir/models.json (other entries kept) with its sha256, labels, input
    and data citation; the card `<name>.MODEL_CARD.md` is written by hand and must cite the same."""
    record = ModelRecord(
        name=name,
        version=version,
        kind="expression",
        format="onnx",
        file=file.name,
        sha256=sha256_file(file),
        card=f"{name.removesuffix('-int8')}.MODEL_CARD.md",
        labels=LABELS,
        input=InputSpec(("batch", 1, INPUT_SIZE, INPUT_SIZE), "float32",
                        "NCHW grey 0-255, one FER2013-aligned face per row (align_face); normalisation inside the graph"),
        data_citation=(CITATION_FER2013, CITATION_FERPLUS) if ferplus else (CITATION_FER2013,),
    )
    register_record(models_dir, record)
    return record


def export_checkpoint(
    ckpt: Path,
    version: str,
    models_dir: Path,
    tta_flip: bool | None = None,
    int8: bool = False,
    data: Path = Path("../shared/data/fer2013"),
    calibrate: bool = False,
    log=print,
) -> list[ModelRecord]:
    """Export checkpoint `ckpt` as models_dir/expression-cnn.v<version>.onnx, check ONNX Runtime
    against torch and register it; with `int8`, also an int8 copy calibrated on 512 Training faces
    of `data`. One `wrote ...` line per file goes to `log`; returns the registry records.
    `tta_flip` None: the mirror average is in the graph if the checkpoint was chosen with it.
    `calibrate`: fold into the classifier the temperature that best fits the PublicTest split of
    `data` (fit_temperature), the split that chose the checkpoint."""
    net, ck = load_checkpoint_model(ckpt)
    if tta_flip is None:
        tta_flip = bool(ck["meta"]["config"].get("tta_flip", True))
    arrays = load_fer2013(data) if calibrate or int8 else None  # read once for both uses
    temperature = 1.0
    if calibrate:
        x_va, y_va = split_arrays(arrays, "PublicTest")
        temperature = fit_temperature(net, x_va, y_va, tta_flip)
        fold_temperature(net, temperature)
    name = f"expression-cnn.v{version}"
    path = Path(models_dir) / f"{name}.onnx"
    m = ck.get("metrics", {})
    extra = {
        "checkpoint_epoch": str(ck["epoch"] + 1),
        "checkpoint_git_commit": ck["meta"].get("git_commit", "unknown"),
        "training_config": json.dumps(ck["meta"]["config"]),
    }
    selected = "val_acc_ema_flip" if tta_flip else "val_acc_ema"
    if selected in m:
        extra["publictest_accuracy_torch"] = f"{m[selected]:.4f}"
    if calibrate:
        extra["temperature"] = f"{temperature:.2f} (lowest PublicTest NLL; folded into the classifier)"
    export_onnx(net, path, str(version), tta_flip=tta_flip, extra_meta=extra)
    err = check_against_torch(net, path, tta_flip=tta_flip)
    ferplus = float(ck["meta"]["config"].get("ferplus_weight", 0.0)) > 0
    entries = [register(models_dir, name, path, str(version), ferplus)]
    calibrated = f", temperature {temperature:.2f}" if calibrate else ""
    log(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB), max |ort-torch| {err:.1e}{calibrated}, sha256 {entries[0].sha256}")
    if int8:
        x_tr, _ = split_arrays(arrays, "Training")
        calib = x_tr[np.random.default_rng(0).choice(len(x_tr), 512, replace=False)]
        q_name = f"{name}-int8"
        q_path = quantize_int8(path, Path(models_dir) / f"{q_name}.onnx", calib)
        entries.append(register(models_dir, q_name, q_path, str(version), ferplus))
        log(f"wrote {q_path} ({q_path.stat().st_size / 1e6:.2f} MB), sha256 {entries[1].sha256}")
    return entries
