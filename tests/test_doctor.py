"""`engagement doctor`: one line per check with what to do, exit 0 / 1, `--json`, Indonesian."""

from __future__ import annotations

import json
import shutil

import pytest

from engagement.app import doctor
from engagement.cli.main import main
from engagement.core.config import models_dir
from conftest import another_programs_database

CHECKS = {"models", "onnxruntime", "cpu", "database", "data_dir", "camera", "screen", "display", "cluster", "postgres"}


def _doctor_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["doctor", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_smoke_every_check_reports_and_a_fresh_machine_is_ready(isolated_data_dir, capsys):
    code, report = _doctor_json(capsys)
    by_check = {row["check"]: row for row in report["checks"]}
    assert code == 0 and report["ok"] is True and set(by_check) == CHECKS
    assert by_check["models"]["status"] == "ok" and by_check["onnxruntime"]["status"] == "ok"
    assert by_check["database"]["key"] == "doctor.database.none_yet"  # nothing analysed yet: not a failure
    for row in report["checks"]:
        assert row["status"] in doctor.STATUSES and row["text"] and "{" not in row["text"]
        assert (row["to_do"] is None) == (row["status"] == "ok"), row


def test_the_shipped_models_are_float32_so_answers_do_not_depend_on_the_cpu(isolated_data_dir, capsys):
    _, report = _doctor_json(capsys)
    (onnx,) = [row for row in report["checks"] if row["check"] == "onnxruntime"]
    (cpu,) = [row for row in report["checks"] if row["check"] == "cpu"]
    assert onnx["values"]["int8"] == [] and cpu["key"] == "doctor.cpu.float"


def test_a_corrupt_model_fails_with_what_to_do(isolated_data_dir, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "models"
    shutil.copytree(models_dir(), copy)
    (copy / "engagement-linear.v2.onnx").write_bytes(b"truncated")
    monkeypatch.setenv("ENGAGEMENT_MODELS_DIR", str(copy))
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("[fail] models:")]
    assert "engagement-linear.v2" in line and "-> to do: reinstall the package" in line
    assert out.splitlines()[-1].startswith("Not ready: 2 checks failed")  # models, and ONNX Runtime loading them


def test_lines_in_indonesian(isolated_data_dir, monkeypatch, capsys):
    monkeypatch.setenv("ENGAGEMENT_LANG", "id")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[oke] model: ") and out[-1].startswith("Siap: tidak ada pemeriksaan yang gagal")


def test_another_programs_database_fails(isolated_data_dir, tmp_path, capsys):
    db = tmp_path / "contacts.db"
    another_programs_database(db)
    code, report = _doctor_json(capsys, "--db", f"sqlite:///{db}")
    (row,) = [r for r in report["checks"] if r["check"] == "database"]
    assert code == 1 and row["status"] == "fail" and "another program's database" in row["text"]


def test_a_database_reports_its_schema_version(isolated_data_dir, capsys):
    from engagement.core.schema import SCHEMA_VERSION
    from engagement.core.store import Store

    url = f"sqlite:///{isolated_data_dir / 'x.db'}"
    Store.open(url).close()
    code, report = _doctor_json(capsys, "--db", url)
    (row,) = [r for r in report["checks"] if r["check"] == "database"]
    assert code == 0 and row["key"] == "doctor.database.ok" and row["values"]["version"] == SCHEMA_VERSION


def test_data_directory_findings(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert doctor.check_data_dir(blocked / "data").status == "fail"  # its parent is a file, not a folder
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    finding = doctor.check_data_dir(shared)
    assert finding.status == "warn" and finding.key == "doctor.data_dir.open"
    shared.chmod(0o700)
    assert doctor.check_data_dir(shared).status == "ok"


@pytest.mark.parametrize(("int8", "flags", "key", "status"), [
    ([], {"avx2"}, "doctor.cpu.float", "ok"),
    (["m"], {"avx2"}, "doctor.cpu.int8_risky", "warn"),  # the saturating u8s8 kernels
    (["m"], {"avx2", "avx512_vnni"}, "doctor.cpu.int8", "ok"),
    (None, None, "doctor.cpu.unknown", "warn"),
])
def test_cpu_features_decide_whether_int8_is_safe(int8, flags, key, status):
    finding = doctor.check_cpu(int8, flags)
    assert (finding.key, finding.status) == (key, status)


def test_op_types_come_from_the_graph_not_from_metadata_text(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def model(op: str, note: str):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
        node = helper.make_node(op, ["x"], ["y"]) if op == "Relu" else helper.make_node(op, ["x", "s"], ["y"])
        graph = helper.make_graph([node], "g", [x], [y], [helper.make_tensor("s", TensorProto.FLOAT, [], [1.0])])
        m = helper.make_model(graph)
        helper.set_model_props(m, {"precision": note})
        path = tmp_path / f"{op}.onnx"
        onnx.save(m, path)
        return path

    assert doctor.onnx_op_types(model("Relu", "float32 weights of the QuantizeLinear int8 file")) == {"Relu"}
    assert doctor.onnx_op_types(model("QuantizeLinear", "")) & doctor.QUANTIZED_OPS == {"QuantizeLinear"}


def test_no_display_on_linux_warns_with_the_tunnel(monkeypatch):
    monkeypatch.setattr(doctor.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    finding = doctor.check_display()
    assert finding.status == "warn" and finding.fix == "doctor.display.fix"
    monkeypatch.setenv("DISPLAY", ":0")
    assert doctor.check_display().status == "ok"


def test_a_missing_extra_warns_unless_the_database_needs_it(monkeypatch):
    assert doctor.check_extra("no_such_module_here", "cluster").status == "warn"
    assert doctor.check_extra("no_such_module_here", "postgres", needed=True).status == "fail"
