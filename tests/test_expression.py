"""Expression CNN: export fidelity, registry/sha256 checks, input errors, alignment, evaluation."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from engagement.core.config import models_dir
from engagement.core.errors import ModelError
from engagement.core.registry import load_registry, resolve_model, sha256_file
from engagement.vision.expression import (
    DEFAULT_MODEL,
    FER_EYE_DIST,
    FER_FACE_CENTRE,
    ExpressionModel,
    InputError,
    align_face,
)
from engagement.vision.expression_eval import evaluate_fer2013, format_fer2013_report
from conftest import require_shared

MODELS = models_dir()
# Read at collection: an unreadable or malformed registry errors here instead of collecting nothing.
REGISTRY = load_registry(MODELS)
EXPRESSION_MODELS = sorted(n for n, r in REGISTRY.items() if r.kind == "expression")
ONNX_MODELS = sorted(n for n, r in REGISTRY.items() if r.format == "onnx")
SHIPPED = DEFAULT_MODEL  # the default; every registered version is checked by the tests parametrised on EXPRESSION_MODELS


# ----------------------------------------------------------------------------- shipped models


def test_the_registry_lists_the_expression_models():
    assert EXPRESSION_MODELS and set(EXPRESSION_MODELS) <= set(ONNX_MODELS)


@pytest.mark.parametrize("name", ONNX_MODELS)
def test_every_shipped_model_has_card_hash_and_metadata(name):
    import onnxruntime as ort

    entry = REGISTRY[name]
    path = MODELS / entry.file
    assert path.is_file(), f"{name}: {path} missing"
    assert sha256_file(path) == entry.sha256, f"{name}: sha256 differs from models.json"
    card = MODELS / entry.card
    assert card.is_file(), f"{name}: model card {card.name} missing"
    assert path.stat().st_size <= 5_000_000 or not name.startswith("expression-cnn")
    if path.suffix != ".onnx":
        return  # a third-party bundle (MediaPipe .task): its licence ships beside it, its card cites the maker's
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    for key in ("version", "data_citation"):
        assert meta.get(key), f"{name}: ONNX metadata lacks {key}"
    if name.startswith("expression-cnn"):
        for key in ("labels", "input_size", "normalisation", "data_terms", "training_commit"):
            assert meta.get(key), f"{name}: ONNX metadata lacks {key}"
        assert "Goodfellow" in meta["data_citation"]
        assert json.loads(meta["labels"]) == ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
        assert f"version {meta['version']}" in card.read_text() or f"v{meta['version']}" in card.read_text()


def test_shipped_expression_model_is_registered():
    assert SHIPPED in REGISTRY


@pytest.fixture(scope="module")
def shipped() -> ExpressionModel:
    return ExpressionModel.load(SHIPPED)


def test_predict_returns_probabilities_per_face(shipped):
    crops = np.random.default_rng(0).integers(0, 256, size=(5, 48, 48), dtype=np.uint8)
    p = shipped.predict(crops)
    assert p.shape == (5, 7) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert shipped.predict(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    # Batching must not change a face's result.
    np.testing.assert_allclose(shipped.predict(crops[2:3]), p[2:3], atol=1e-5)
    assert shipped.labels[3] == "Happy" and shipped.version == SHIPPED.rsplit(".v", 1)[1]


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 64, 64), np.uint8), np.zeros((48, 48), np.uint8), np.zeros((2, 48, 48), np.float32), [[0]]],
    ids=["wrong-size", "no-batch-axis", "float", "list"],
)
def test_wrong_input_gives_clear_error(shipped, bad):
    with pytest.raises(InputError, match=r"crops must"):
        shipped.predict(bad)
    assert issubclass(InputError, ModelError) and issubclass(InputError, ValueError)


# ----------------------------------------------------------------------------- registry errors


def _registry_copy(tmp_path: Path, data: bytes, sha: str | None = None) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    (d / "m.onnx").write_bytes(data)
    digest = sha or __import__("hashlib").sha256(data).hexdigest()
    (d / "models.json").write_text(json.dumps({SHIPPED: {"file": "m.onnx", "sha256": digest}}))
    return d


def test_corrupt_model_file_is_refused_by_sha256(tmp_path):
    good = (MODELS / REGISTRY[SHIPPED].file).read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # one flipped byte in the weights
    d = _registry_copy(tmp_path, bytes(bad), sha=REGISTRY[SHIPPED].sha256)
    with pytest.raises(ModelError, match=r"corrupt or not the registered one") as e:
        ExpressionModel.load(SHIPPED, d)
    assert "\n" not in str(e.value)


def test_unloadable_model_with_matching_hash_is_a_model_error(tmp_path):
    d = _registry_copy(tmp_path, b"this is not an onnx file")
    with pytest.raises(ModelError, match=r"cannot load model") as e:
        ExpressionModel.load(SHIPPED, d)
    assert "\n" not in str(e.value)


def test_missing_registry_entry_or_file(tmp_path):
    d = _registry_copy(tmp_path, b"x")
    with pytest.raises(ModelError, match=r"not registered"):
        resolve_model("expression-cnn.v99", d)
    (d / "m.onnx").unlink()
    with pytest.raises(ModelError, match=r"missing"):
        resolve_model(SHIPPED, d)
    with pytest.raises(ModelError, match=r"registry not found"):
        resolve_model(SHIPPED, tmp_path / "nowhere")


# ----------------------------------------------------------------------------- alignment


def _synthetic_landmarks(eye_a, eye_b, mouth) -> np.ndarray:
    lm = np.zeros((478, 3), np.float32)
    lm[[33, 133], :2] = eye_a
    lm[[362, 263], :2] = eye_b
    lm[[13, 14], :2] = mouth
    return lm


@pytest.mark.parametrize("angle_deg,face_px", [(0, 17.2 * 4), (25, 17.2 * 4), (-15, 17.2 * 12), (10, 17.2 * 0.8)])
def test_align_face_levels_eyes_at_fer2013_positions(angle_deg, face_px):
    # A face whose eye distance is face_px, rotated by angle_deg, drawn as two bright dots.
    k = face_px / FER_EYE_DIST
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = np.array([400.0, 300.0])
    fer_eyes = np.array([[24 - FER_EYE_DIST / 2, 18.9], [24 + FER_EYE_DIST / 2, 18.9]])
    fer_mouth = np.array([24.0, 18.9 + 19.0])
    to_frame = lambda p: (p - np.array(FER_FACE_CENTRE)) * k @ rot.T + centre  # noqa: E731
    eyes, mouth = to_frame(fer_eyes), to_frame(fer_mouth)
    frame = np.zeros((600, 800, 3), np.uint8)
    for x, y in eyes:
        import cv2

        cv2.circle(frame, (int(round(x)), int(round(y))), max(2, int(k * 1.5)), (255, 255, 255), -1)
    crop = align_face(frame, _synthetic_landmarks(eyes[0], eyes[1], mouth))
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    for ex, ey in fer_eyes:
        # The brightest pixel near each expected eye position is within 1.5 px of it.
        ys, xs = np.mgrid[0:48, 0:48]
        near = (np.abs(xs - ex) < 6) & (np.abs(ys - ey) < 6)
        w = np.where(near, crop.astype(float), 0)
        cy, cx = (w * ys).sum() / w.sum(), (w * xs).sum() / w.sum()
        assert abs(cx - ex) < 1.5 and abs(cy - ey) < 1.5, (cx, cy, ex, ey)


def test_align_face_rejects_bad_input():
    frame = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(InputError, match="landmarks"):
        align_face(frame, np.zeros((10, 3), np.float32))
    with pytest.raises(InputError, match="frame"):
        align_face(frame.astype(np.float32), np.zeros((478, 3), np.float32))
    nan = np.full((478, 3), np.nan, np.float32)
    with pytest.raises(InputError, match="NaN"):
        align_face(frame, nan)


def test_align_face_works_at_the_frame_edge():
    frame = np.full((120, 160, 3), 90, np.uint8)
    lm = _synthetic_landmarks((2.0, 5.0), (60.0, 6.0), (31.0, 70.0))  # big face cut by the border
    crop = align_face(frame, lm)
    assert crop.shape == (48, 48) and int(crop.min()) == 90 == int(crop.max())


# ----------------------------------------------------------------------------- evaluation


def _synthetic_npz(path: Path, n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 48, 48), dtype=np.uint8)
    usage = np.array(["Training", "PublicTest"] * (n // 2))
    labels = rng.integers(0, 7, size=n).astype(np.int8)
    votes = rng.integers(0, 4, size=(n, 10)).astype(np.uint8)  # FER+ crowd votes, as the shared npz has
    np.savez_compressed(path, pixels=pixels, usage=usage, fer_label=labels, ferplus_votes=votes)
    return pixels[usage == "PublicTest"], labels[usage == "PublicTest"]


def test_evaluate_on_tiny_synthetic_npz(tmp_path, shipped):
    npz = tmp_path / "tiny.npz"
    pixels, labels = _synthetic_npz(npz)
    result = evaluate_fer2013(npz, "PublicTest")
    expected = float((shipped.predict(pixels).argmax(1) == labels).mean())
    assert result["n"] == len(labels) and result["accuracy"] == pytest.approx(expected)
    assert np.asarray(result["confusion"]).sum() == len(labels)
    report = format_fer2013_report(result)
    last = report.splitlines()[-1]
    assert re.fullmatch(r"accuracy=\d\.\d{4}", last) and float(last.split("=")[1]) == pytest.approx(expected, abs=5e-5)
    assert "macro_f1=" in report and "recall" in report


def test_evaluate_command(tmp_path, capsys):
    from engagement.cli.main import main

    npz = tmp_path / "tiny.npz"
    _synthetic_npz(npz)
    assert main(["evaluate", "fer2013", str(npz), "--split", "PublicTest"]) == 0
    assert capsys.readouterr().out.rstrip("\n").splitlines()[-1].startswith("accuracy=")
    assert main(["evaluate", "fer2013", str(npz), "--split", "PrivateTest"]) == 2
    assert "no rows" in capsys.readouterr().err


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", EXPRESSION_MODELS)
def test_shipped_model_reproduces_its_cards_publictest_figure(name):
    # A reproducibility check, not an accuracy estimate: PublicTest chose each model's checkpoint,
    # so its figure is optimistic (v4's card: about 0.715 estimated, 0.7014 on FER2013 PrivateTest,
    # which is kept out of the project and checked independently). What this guards: the file,
    # the runtime and the evaluation give exactly the figure the card states, on any CPU.
    npz = require_shared("fer2013/fer2013_train_publictest.npz")
    result = evaluate_fer2013(npz, "PublicTest", name=name, threads=2)
    assert result["n"] == 3579
    card = (MODELS / f"{name}.MODEL_CARD.md").read_text()
    claimed = float(re.search(r"accuracy (0\.\d{4})", card).group(1))
    assert result["accuracy"] == pytest.approx(claimed, abs=5e-4), format_fer2013_report(result)
    assert result["accuracy"] >= 0.68


# Integer kernels fused from a QDQ graph answer differently on different CPUs (u8s8 saturation on
# AVX2 without VNNI; rounding of each layer's requantization everywhere), so a shipped model is
# float: the same on every x86-64 machine, to float rounding.
INTEGER_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
               "DynamicQuantizeLinear"}


@pytest.mark.parametrize("name", EXPRESSION_MODELS)
def test_shipped_expression_models_hold_no_integer_arithmetic(name):
    onnx = pytest.importorskip("onnx")
    ops = {node.op_type for node in onnx.load(str(MODELS / REGISTRY[name].file)).graph.node}
    assert not ops & INTEGER_OPS, f"{name} holds {sorted(ops & INTEGER_OPS)}"


def _unoptimised_probs(path: Path, pixels: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # every node as written
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    batches = [pixels[i : i + 256, None].astype(np.float32) for i in range(0, len(pixels), 256)]
    return np.concatenate([session.run(None, {session.get_inputs()[0].name: x})[0] for x in batches])


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", EXPRESSION_MODELS)
def test_shipped_model_answers_as_its_graph_says_with_every_optimisation(name):
    # The product's session (ONNX Runtime's default optimisations, which fuse kernels for this
    # CPU) against the same file run node by node (ORT_DISABLE_ALL) on the PublicTest faces: a
    # model that agrees here answers the same on any CPU. The int8 files shipped before failed
    # it on every CPU (|dp| up to 0.0066 on an AVX-512 VNNI machine; 11 % of the labels changed
    # on AVX2 without VNNI).
    npz = require_shared("fer2013/fer2013_train_publictest.npz")
    with np.load(npz) as z:
        pixels = z["pixels"][z["usage"] == "PublicTest"]
    product = ExpressionModel.load(name, threads=2).predict(pixels, batch_size=256)
    graph = _unoptimised_probs(resolve_model(name), pixels)
    same = float((product.argmax(1) == graph.argmax(1)).mean())
    worst = float(np.abs(product - graph).max())
    assert same >= 0.999 and worst < 1e-3, f"{name}: top-1 identical on {same:.4f}, max |dp| {worst:.2e}"


# ----------------------------------------------------------------------------- training side


def test_tiny_random_model_onnx_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from engagement.app.training.export_expression import check_against_torch, export_onnx
    from engagement.app.training.expression_nets import ExpressionCNN

    torch.manual_seed(0)
    net = ExpressionCNN(widths=(4, 8), convs_per_stage=1, dropout=0.0)
    # Non-trivial BN statistics, so the test covers their folding into the graph.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    for tta in (True, False):
        path = export_onnx(net, tmp_path / f"tiny-{tta}.onnx", "0", tta_flip=tta)
        assert check_against_torch(net, path, tta_flip=tta, n=7) < 1e-4
        model = ExpressionModel.from_file(path)
        assert model.version == "0" and len(model.labels) == 7
        crops = np.random.default_rng(1).integers(0, 256, size=(33, 48, 48), dtype=np.uint8)
        from engagement.app.training.expression_nets import ExportWrapper

        with torch.no_grad():
            ref = ExportWrapper(net.eval(), tta).eval()(torch.from_numpy(crops[:, None].astype(np.float32))).numpy()
        np.testing.assert_allclose(model.predict(crops, batch_size=8), ref, atol=1e-4)


@pytest.mark.slow
def test_training_smoke_checkpoints_and_resume(tmp_path):
    pytest.importorskip("torch")
    from engagement.app.training.expression_train import train_expression

    npz = tmp_path / "tiny.npz"
    _synthetic_npz(npz, n=64)
    out = tmp_path / "run"
    kw = dict(widths=(4, 8), convs_per_stage=1, batch_size=16, threads=1, bf16=False)
    best = train_expression(npz, out, epochs=1, seed=3, **kw)
    assert best.is_file() and (out / "last.pt").is_file()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and "val_acc_ema_flip" in json.loads(lines[0])
    # Resuming a finished run trains nothing more; a different epoch count is refused clearly.
    train_expression(npz, out, epochs=1, seed=3, resume=True, **kw)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    with pytest.raises(ValueError, match="resume with the same"):
        train_expression(npz, out, epochs=2, seed=3, resume=True, **kw)


@pytest.mark.slow
def test_export_command_writes_and_registers_both_files(tmp_path, capsys):
    pytest.importorskip("torch")
    from engagement.app.training.expression_train import train_expression
    from engagement.cli.main import main
    from engagement.core.registry import load_registry, resolve_model

    npz = tmp_path / "tiny.npz"
    _synthetic_npz(npz, n=1100)  # --int8 calibrates on 512 Training faces
    best = train_expression(npz, tmp_path / "run", epochs=1, seed=3, widths=(4, 8), convs_per_stage=1,
                            batch_size=16, threads=1, bf16=False, limit_train=64)
    capsys.readouterr()  # the training's own progress lines
    models = tmp_path / "models"
    models.mkdir()
    args = ["train", "export-expression", "--ckpt", str(best), "--version", "0", "--models-dir", str(models)]
    assert main([*args, "--int8", "--calibrate", "--data", str(npz)]) == 0
    out = capsys.readouterr().out.splitlines()
    names = ["expression-cnn.v0", "expression-cnn.v0-int8"]
    assert [line.split()[:2] for line in out] == [["wrote", str(models / f"{name}.onnx")] for name in names]
    assert sorted(load_registry(models)) == names
    assert resolve_model(names[1], models) == models / f"{names[1]}.onnx"  # its sha256 matches
    # --calibrate: the fitted temperature is in the graph and said in both files' metadata.
    temperature = float(re.search(r"temperature (\d\.\d\d)", out[0]).group(1))
    for name in names:
        assert ExpressionModel.load(name, models).metadata["temperature"].startswith(f"{temperature:.2f} ")


def test_no_flip_export_quantizes_to_int8_with_its_metadata(tmp_path):
    torch = pytest.importorskip("torch")
    from engagement.app.training.export_expression import export_onnx, quantize_int8
    from engagement.app.training.expression_nets import ExpressionCNN, ExportWrapper

    torch.manual_seed(0)
    net = ExpressionCNN(widths=(8, 16), convs_per_stage=1, dropout=0.0).eval()
    fp32 = export_onnx(net, tmp_path / "tiny.onnx", "0", tta_flip=False)
    rng = np.random.default_rng(2)
    calib = rng.integers(0, 256, size=(64, 48, 48), dtype=np.uint8)
    int8 = quantize_int8(fp32, tmp_path / "tiny-int8.onnx", calib)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-int8.onnx", "tiny.onnx"]  # no leftovers
    model = ExpressionModel.from_file(int8)
    assert model.metadata["tta"] == "none" and model.version == "0" and len(model.labels) == 7
    assert "int8" in model.metadata["quantization"] and model.metadata["float_model_sha256"] == sha256_file(fp32)
    ops = {node.op_type for node in __import__("onnx").load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    crops = rng.integers(0, 256, size=(32, 48, 48), dtype=np.uint8)
    with torch.no_grad():
        ref = ExportWrapper(net, tta_flip=False)(torch.from_numpy(crops[:, None].astype(np.float32))).numpy()
    got = model.predict(crops)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    # int8 is an approximation: close to the float model, not equal to it.
    assert np.abs(got - ref).max() < 0.01, np.abs(got - ref).max()


def _tiny_int8(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny random network's float32 export and its int8 (QDQ) copy, as --int8 makes them."""
    torch = pytest.importorskip("torch")
    from engagement.app.training.export_expression import export_onnx, quantize_int8
    from engagement.app.training.expression_nets import ExpressionCNN

    torch.manual_seed(0)
    net = ExpressionCNN(widths=(8, 16), convs_per_stage=1, dropout=0.0).eval()
    fp32 = export_onnx(net, tmp_path / "tiny.onnx", "0", tta_flip=False)
    calib = np.random.default_rng(2).integers(0, 256, size=(64, 48, 48), dtype=np.uint8)
    return fp32, quantize_int8(fp32, tmp_path / "tiny-int8.onnx", calib)


def test_float_graph_of_an_int8_model_is_that_model_without_its_rounding(tmp_path):
    onnx = pytest.importorskip("onnx")
    from engagement.app.training.expression_float import float_from_int8

    fp32, int8 = _tiny_int8(tmp_path)
    out = float_from_int8(int8, tmp_path / "tiny-float.onnx")
    assert not {node.op_type for node in onnx.load(str(out)).graph.node} & INTEGER_OPS
    model = ExpressionModel.from_file(out)
    assert model.metadata["int8_model_sha256"] == sha256_file(int8) and model.metadata["precision"].startswith("float32")
    assert "quantization" not in model.metadata and model.version == "0"
    crops = np.random.default_rng(3).integers(0, 256, size=(32, 48, 48), dtype=np.uint8)
    got = model.predict(crops)
    assert np.abs(got - _unoptimised_probs(out, crops)).max() < 1e-5  # no fusion changes it
    # The int8 graph run node by node is the float graph plus 8-bit rounding: close (the rounding
    # moves this net's answers by ~3e-4), and as close to the network before quantization. Without
    # the ranges that stand for the ReLUs the quantizer folded away, it is 0.03 off.
    assert np.abs(got - _unoptimised_probs(int8, crops)).max() < 0.005
    assert np.abs(got - _unoptimised_probs(fp32, crops)).max() < 0.005


def test_float_expression_command_replaces_a_registered_file(tmp_path, capsys):
    pytest.importorskip("onnx")
    from engagement.app.training.export_expression import register
    from engagement.cli.main import main

    _, int8 = _tiny_int8(tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(int8, models / "expression-cnn.v0.onnx")
    register(models, "expression-cnn.v0", models / "expression-cnn.v0.onnx", "0", ferplus=False)
    args = ["train", "float-expression", "--name", "expression-cnn.v0", "--models-dir", str(models)]
    assert main([*args, str(int8)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {models / 'expression-cnn.v0.onnx'} ")
    model = ExpressionModel.load("expression-cnn.v0", models)  # the registry holds the new sha256
    assert model.metadata["int8_model_sha256"] == sha256_file(int8)
    assert sorted(p.name for p in models.iterdir()) == ["expression-cnn.v0.onnx", "models.json"]
    for source, message in ((models / "expression-cnn.v0.onnx", "not an int8 QDQ model"),
                            (tmp_path / "missing.onnx", "no such file"),
                            (models / "models.json", "cannot read")):
        assert main([*args, str(source)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, err
    assert main(["train", "float-expression", str(int8), "--name", "expression-cnn.v9", "--models-dir", str(models)]) == 2
    assert "not registered" in capsys.readouterr().err


def test_latency_benchmark_compares_models_in_one_run(capsys):
    from benchmarks.expression_latency import main

    file = MODELS / REGISTRY[SHIPPED].file
    assert main(["--model", SHIPPED, "--model", str(file), "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "wall" in line and "cpu" in line]
    assert len(rows) == 4  # two models at batch 1 and at batch 16
    assert rows[0].strip().startswith(SHIPPED) and rows[0].count("(1.00x)") == 2
    assert rows[1].strip().startswith(str(file))
    assert main(["--model", "expression-cnn.v99"]) == 2
    assert capsys.readouterr().err.startswith("error: model 'expression-cnn.v99' is not registered")


# ----------------------------------------------------------------------------- the product's framing


def _fer_like_face() -> np.ndarray:
    """A 48x48 grey face, framed more loosely than FER2013, cut from scikit-image's astronaut photo."""
    skimage_data = pytest.importorskip("skimage.data")
    import cv2

    gray = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray[30:250, 100:320], (48, 48), interpolation=cv2.INTER_AREA)


def test_product_crops_frame_faces_and_flag_misses():
    import cv2

    from engagement.app.training.expression_align import product_crops
    from engagement.vision.landmarks import FaceLandmarker, LandmarkerOptions

    face = _fer_like_face()  # a loose crop: eyes 9.6 px apart where FER2013 has 17.2
    pixels = np.stack([face, face[:, ::-1].copy(), np.full((48, 48), 128, np.uint8)])
    crops, found = product_crops(pixels, progress_every=0)
    assert crops.shape == pixels.shape and crops.dtype == np.uint8
    assert found.tolist() == [True, True, False]  # the flat grey image has no face
    assert not crops[2].any()
    # Found again in the framed crop, the eyes sit level, at FER2013's distance and centre.
    with FaceLandmarker.from_options(LandmarkerOptions(max_faces=1, static_images=True)) as landmarker:
        big = cv2.cvtColor(cv2.resize(crops[0], (192, 192), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
        (points,) = landmarker.detect(big)
    eye_a, eye_b = points[[33, 133], :2].mean(0) / 4, points[[362, 263], :2].mean(0) / 4
    assert np.hypot(*(eye_b - eye_a)) == pytest.approx(FER_EYE_DIST, rel=0.15)
    assert abs(eye_b[1] - eye_a[1]) < 1.0 and abs((eye_a + eye_b)[0] / 2 - FER_FACE_CENTRE[0]) < 1.5
    # The mirrored face gives the mirrored framing.
    assert np.corrcoef(crops[0][:, ::-1].ravel(), crops[1].ravel())[0, 1] > 0.9


def test_framed_crops_are_cached_and_refreshed_when_the_data_changes(tmp_path):
    from engagement.app.training.expression_align import cached_product_crops

    face = _fer_like_face()
    arrays = {"pixels": np.stack([face, face])}
    cache = tmp_path / "framed.npz"
    crops, found = cached_product_crops(arrays, cache)
    assert cache.is_file() and found.tolist() == [True, True]
    with np.load(cache) as z:  # a cache of these faces is read, not recomputed
        np.savez_compressed(cache, crops=crops * 0 + 7, found=found, pixels_sha256=z["pixels_sha256"])
    assert (cached_product_crops(arrays, cache)[0] == 7).all()
    arrays = {"pixels": np.stack([face, face[:, ::-1]])}  # other faces, same count: framed again
    crops, found = cached_product_crops(arrays, cache)
    assert len(crops) == 2 and found.all() and not (crops == 7).all()
    assert (cached_product_crops(arrays, cache)[0] == crops).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["framed.npz"]  # no temporary file left


@pytest.mark.slow
def test_training_with_the_product_framing_scores_both_framings(tmp_path):
    pytest.importorskip("torch")
    from engagement.app.training.expression_train import train_expression

    face = _fer_like_face()
    rng = np.random.default_rng(0)
    pixels = np.stack([np.clip(face.astype(int) + rng.integers(-8, 9, face.shape), 0, 255).astype(np.uint8)
                       for _ in range(16)])
    npz = tmp_path / "faces.npz"
    np.savez_compressed(npz, pixels=pixels, usage=np.array(["Training", "PublicTest"] * 8),
                        fer_label=rng.integers(0, 7, 16).astype(np.int8))
    out = tmp_path / "run"
    train_expression(npz, out, epochs=1, seed=0, widths=(4, 8), convs_per_stage=1, batch_size=8,
                     threads=1, bf16=False, framed_share=0.5)
    rec = json.loads((out / "metrics.jsonl").read_text())
    # Checkpoints are chosen by the mean accuracy over FER2013's crops and the product's framing.
    assert rec["selected_by"] == pytest.approx(0.5 * (rec["val_acc_ema_flip"] + rec["val_acc_framed_flip"]))
    assert (out / "fer2013-framed.npz").is_file()


def test_checkpoint_rebuilt_from_an_int8_export_computes_the_same_function(tmp_path):
    torch = pytest.importorskip("torch")
    from engagement.app.training.export_expression import export_onnx, quantize_int8
    from engagement.app.training.expression import checkpoint_from_onnx
    from engagement.app.training.expression_float import float_from_int8
    from engagement.app.training.expression_nets import ExpressionCNN, ExportWrapper

    npz = tmp_path / "tiny.npz"
    _synthetic_npz(npz, n=256)
    torch.manual_seed(0)
    net = ExpressionCNN()
    with torch.no_grad():  # BatchNorm statistics that are not the identity, as after training
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    net.eval()
    fp32 = export_onnx(net, tmp_path / "fp32.onnx", "0")
    calib = np.random.default_rng(1).integers(0, 256, size=(64, 48, 48), dtype=np.uint8)
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", calib)
    # The shipped files are float graphs of int8 weights (float_from_int8); recipes start from them.
    shipped_kind = float_from_int8(int8, tmp_path / "float-of-int8.onnx")
    for source, tolerance in ((fp32, 1e-4), (int8, 0.02), (shipped_kind, 0.02)):
        ck = checkpoint_from_onnx(source, npz, tmp_path / f"{source.stem}.pt", n_calib=64)
        rebuilt = ExpressionCNN()
        rebuilt.load_state_dict(torch.load(ck, weights_only=False)["ema"])
        crops = np.random.default_rng(2).integers(0, 256, size=(16, 1, 48, 48)).astype(np.float32)
        with torch.no_grad():
            ref = ExportWrapper(net)(torch.from_numpy(crops)).numpy()
            got = ExportWrapper(rebuilt.eval())(torch.from_numpy(crops)).numpy()
        assert np.abs(got - ref).max() < tolerance, (source.name, np.abs(got - ref).max())


# ----------------------------------------------------------------------------- distillation


def _register_constant_teacher(models: Path, label: str) -> str:
    """A registered expression model that answers `label` for every face (about 0.9996)."""
    torch = pytest.importorskip("torch")
    from engagement.app.training.export_expression import export_onnx, register
    from engagement.app.training.expression_nets import LABELS, ExpressionCNN

    net = ExpressionCNN(widths=(4,), convs_per_stage=1, dropout=0.0).eval()
    with torch.no_grad():
        net.head[-1].weight.zero_()
        net.head[-1].bias.copy_(torch.tensor([8.0 if name == label else 0.0 for name in LABELS]))
    name = f"expression-cnn.v{label.lower()}"
    register(models, name, export_onnx(net, models / f"{name}.onnx", label.lower()), label.lower(), ferplus=False)
    return name


def test_teacher_probs_are_the_models_mean_and_cached_for_these_faces_and_teachers(tmp_path):
    from engagement.app.training.expression_teacher import cached_teacher_probs

    models = tmp_path / "models"
    models.mkdir()
    sad, happy = _register_constant_teacher(models, "Sad"), _register_constant_teacher(models, "Happy")
    faces = np.random.default_rng(0).integers(0, 256, size=(5, 48, 48), dtype=np.uint8)
    cache = tmp_path / "teacher.npz"
    probs = cached_teacher_probs((sad, happy), faces, cache, models)
    assert probs.shape == (5, 7) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert np.allclose(probs[:, 4], probs[:, 3]) and (probs[:, 4] > 0.49).all()  # half Sad, half Happy
    with np.load(cache) as z:  # the cache of these faces and teachers is read, not recomputed
        np.savez_compressed(cache, probs=probs * 0, digest=z["digest"])
    assert not cached_teacher_probs((sad, happy), faces, cache, models).any()
    assert (cached_teacher_probs((sad,), faces, cache, models)[:, 4] > 0.99).all()  # other teachers
    assert (cached_teacher_probs((sad,), faces[:4], cache, models)[:, 4] > 0.99).all()  # other faces
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "teacher.npz"]  # no temporary file


@pytest.mark.slow
def test_a_distilled_student_answers_like_its_teacher_and_exports_without_the_mirror(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from engagement.app.training.export_expression import export_checkpoint
    from engagement.app.training.expression_data import normalise
    from engagement.app.training.expression_nets import LABELS, load_checkpoint_model
    from engagement.app.training.expression_train import train_expression

    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("ENGAGEMENT_MODELS_DIR", str(models))
    teacher = _register_constant_teacher(models, "Sad")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(64, 48, 48), dtype=np.uint8)
    npz = tmp_path / "faces.npz"
    # Every face is labelled Happy; the teacher says Sad to all of them.
    np.savez_compressed(npz, pixels=pixels, usage=np.array(["Training", "PublicTest"] * 32),
                        fer_label=np.full(64, LABELS.index("Happy"), np.int8))
    kw = dict(epochs=3, seed=0, widths=(4, 8), convs_per_stage=1, batch_size=8, threads=1, bf16=False,
              label_smoothing=0.0, lr=0.05)
    answers = {}
    for weight in (0.0, 0.75):
        out = tmp_path / f"run-{weight}"
        teach = dict(teacher=(teacher,), teacher_weight=weight) if weight else {}
        train_expression(npz, out, tta_flip=False, **teach, **kw)
        net, _ = load_checkpoint_model(out / "last.pt")
        with torch.no_grad():
            answers[weight] = {LABELS[i] for i in net(normalise(torch.from_numpy(pixels[1::2]))).argmax(1).tolist()}
        rec = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        assert rec["selected_by"] == rec["val_acc_ema"]  # chosen on the single pass it will export
    assert answers == {0.0: {"Happy"}, 0.75: {"Sad"}}
    assert (tmp_path / "run-0.75" / "teacher-raw.npz").is_file()
    # The export follows the checkpoint: no mirror pass in the graph.
    (record,) = export_checkpoint(tmp_path / "run-0.75" / "best.pt", "9", models)
    model = ExpressionModel.load(record.name, models)
    assert model.metadata["tta"] == "none"
    assert sum(node.op_type == "Conv" for node in __import__("onnx").load(str(model.path)).graph.node) == 2


def test_fitted_temperature_recovers_how_over_confident_a_net_is_and_keeps_its_answers():
    torch = pytest.importorskip("torch")
    from engagement.app.training.export_expression import fit_temperature, fold_temperature
    from engagement.app.training.expression_data import normalise
    from engagement.app.training.expression_nets import ExpressionCNN

    torch.manual_seed(0)
    net = ExpressionCNN(widths=(4,), convs_per_stage=1, dropout=0.0).eval()
    with torch.no_grad():
        net.head[-1].weight.normal_(0, 3.0)
        net.head[-1].bias.zero_()
    rng = np.random.default_rng(0)
    # Faces of every brightness, so that the logits differ from face to face by several units.
    levels = rng.integers(0, 256, size=3000)
    pixels = np.clip(levels[:, None, None] + rng.normal(0, 20, (3000, 48, 48)), 0, 255).astype(np.uint8)
    x = normalise(torch.from_numpy(pixels))
    with torch.no_grad():
        logits = net(x)
    assert float(logits.std(0).min()) > 0.3
    # Labels drawn as if the truth were softmax(logits / 2): the net is twice as sure as it should be.
    truth = torch.softmax(logits / 2.0, dim=1).numpy().astype(np.float64)
    labels = np.array([rng.choice(7, p=p / p.sum()) for p in truth])
    t = fit_temperature(net, pixels, labels, tta_flip=False)
    assert 1.6 < t < 2.5, t
    fold_temperature(net, t)
    with torch.no_grad():
        folded = net(x)
    torch.testing.assert_close(folded, logits / t, rtol=1e-5, atol=1e-5)
    assert torch.equal(folded.argmax(1), logits.argmax(1))  # no answer changes
