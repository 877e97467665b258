"""The model registry's schema, checked on every shipped entry (torchvision's weights-meta test)."""

from __future__ import annotations

import json
import re
from dataclasses import fields, replace

import pytest

from engagement.core.config import models_dir
from engagement.core.errors import ModelError
from engagement.core.registry import FORMATS, KINDS, InputSpec, ModelRecord, load_registry, model_record, register, sha256_file
from engagement.temporal.features import INPUT_NAMES
from engagement.temporal.model import LEVEL_LABELS

MODELS = models_dir()
RAW = json.loads((MODELS / "models.json").read_text())


def _prose(text: str) -> str:
    """Card text as prose: markdown emphasis dropped, line breaks and runs of spaces as one space."""
    return re.sub(r"\s+", " ", text.replace("*", ""))


def test_the_registry_is_not_empty_and_every_entry_loads():
    records = load_registry()
    assert set(records) == set(RAW) and {r.kind for r in records.values()} >= {"expression", "temporal"}


@pytest.mark.parametrize("name", sorted(RAW))
def test_entry_fields_are_present_and_typed(name):
    entry = RAW[name]
    expected = {f.name for f in fields(ModelRecord)} - {"name"}
    assert set(entry) == expected, f"{name}: fields {sorted(set(entry) ^ expected)} differ from the schema"
    record = ModelRecord.from_entry(name, entry)
    assert record.to_entry() == {**entry, "labels": tuple(entry["labels"]), "data_citation": tuple(entry["data_citation"]),
                                 "input": {**entry["input"], "shape": tuple(entry["input"]["shape"]),
                                           "features": tuple(entry["input"].get("features", ()))}}
    assert record.kind in KINDS and record.format in FORMATS
    assert name.endswith(f".v{record.version.split('.')[0]}") or record.kind == "landmarker"


@pytest.mark.parametrize("name", sorted(RAW))
def test_file_hash_and_card(name):
    record = model_record(name)
    path = MODELS / record.file
    assert path.is_file(), f"{name}: {path.name} missing"
    assert sha256_file(path) == record.sha256, f"{name}: sha256 differs from models.json"
    assert path.suffix == {"onnx": ".onnx", "mediapipe-task": ".task"}[record.format]
    card = MODELS / record.card
    assert card.is_file(), f"{name}: model card {record.card} missing"
    text = _prose(card.read_text())
    for citation in record.data_citation:
        assert citation in text, f"{name}: the card does not cite {citation!r}"


@pytest.mark.parametrize("name", sorted(n for n in RAW if RAW[n]["format"] == "onnx"))
def test_labels_and_input_match_the_onnx_graph(name):
    import onnxruntime as ort

    record = model_record(name)
    session = ort.InferenceSession(str(MODELS / record.file), providers=["CPUExecutionProvider"])
    graph_input = session.get_inputs()[0]
    assert len(graph_input.shape) == len(record.input.shape)
    for axis, (graph, declared) in enumerate(zip(graph_input.shape, record.input.shape)):
        if isinstance(declared, int):
            assert graph == declared, f"{name}: input axis {axis} is {graph}, registry says {declared}"
    assert graph_input.type == f"tensor({'float' if record.input.dtype == 'float32' else record.input.dtype})"
    meta = session.get_modelmeta().custom_metadata_map
    if record.kind == "expression":
        assert session.get_outputs()[0].shape[-1] == len(record.labels)
        assert json.loads(meta["labels"]) == list(record.labels)
        assert meta["version"] == record.version
    else:  # temporal: the `levels` output has one column per label, the features are the graph's inputs
        levels = {o.name: o.shape for o in session.get_outputs()}["levels"]
        assert levels[-1] == len(record.labels) and record.labels == LEVEL_LABELS
        assert list(record.input.features) == json.loads(meta["input_names"])
        assert len(record.input.features) == record.input.shape[-1]
        trained = json.loads(meta.get("trained_inputs", meta["input_names"]))
        assert set(trained) <= set(INPUT_NAMES)
        assert meta["version"] == record.version


def test_a_mediapipe_task_landmarker_fits_the_schema():
    entry = {
        "version": "1", "kind": "landmarker", "format": "mediapipe-task", "file": "face_landmarker.task",
        "sha256": "0" * 64, "card": "face_landmarker.MODEL_CARD.md", "labels": [],
        "input": {"shape": ["height", "width", 3], "dtype": "uint8", "layout": "HWC RGB frame"},
        "data_citation": ["Google, MediaPipe Face Landmarker model card"],
    }
    record = ModelRecord.from_entry("face-landmarker", entry)
    assert record.format == "mediapipe-task" and record.labels == () and record.input.features == ()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kind": "classifier"}, "kind must be one of"),
        ({"format": "tflite"}, "format must be one of"),
        ({"sha256": "ABC"}, "sha256 must be 64"),
        ({"labels": "Happy"}, "'labels' must be a list"),
        ({"data_citation": []}, "cite at least one"),
        ({"input": {"shape": [], "dtype": "float32", "layout": "x"}}, "input shape"),
        ({"version": None}, "'version' must be a non-empty string"),
    ],
)
def test_a_malformed_entry_is_a_model_error_naming_the_field(change, message):
    name = sorted(RAW)[0]
    with pytest.raises(ModelError, match=message):
        ModelRecord.from_entry(name, {**RAW[name], **change})


def test_register_adds_one_entry_and_keeps_the_others(tmp_path):
    (tmp_path / "models.json").write_text(json.dumps(RAW))
    record = replace(model_record(sorted(RAW)[0]), name="expression-cnn.v9", version="9",
                     input=InputSpec(("batch", 1, 48, 48), "float32", "NCHW grey"))
    register(tmp_path, record)
    assert set(load_registry(tmp_path)) == set(RAW) | {"expression-cnn.v9"}
    assert load_registry(tmp_path)["expression-cnn.v9"] == record


def test_a_site_models_folder_overrides_the_shipped_one(monkeypatch, tmp_path):
    monkeypatch.setenv("ENGAGEMENT_MODELS_DIR", str(tmp_path))
    assert models_dir() == tmp_path
    with pytest.raises(ModelError, match="model registry not found"):
        model_record("expression-cnn.v4")
    monkeypatch.delenv("ENGAGEMENT_MODELS_DIR")
    assert (models_dir() / "models.json").is_file()
