"""`engagement doctor`: checks the installation and the machine, one finding per check.

Each check returns a `Finding` holding a status (ok / warn / fail), a catalogue key for what was
found and, where something is wrong, one for what to do; the command line words them in the
operator's language. Only a `fail` means the program cannot do its main job (analyse a
recording); what only some users need (a camera, a screen, Ray, PostgreSQL) is at most a `warn`.
Nothing here opens the camera or grabs the screen: a check must not switch on a camera light.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from engagement.core import schema
from engagement.core.config import data_dir, default_db_url, has_display, models_dir
from engagement.core.errors import EngagementError
from engagement.core.registry import load_registry, onnx_session, resolve_model
from engagement.core.store import Store, sqlite_path

STATUSES = ("ok", "warn", "fail")
MIN_FREE_GB = 2.0  # an hour of per-second rows is small; exports, backups and receipts are not
# Operators that only a quantized graph holds (their kernels' results depend on the CPU).
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                           "MatMulInteger", "DynamicQuantizeLinear"})


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # ok | warn | fail
    key: str  # catalogue key of what was found, "doctor.<check>.<outcome>"
    values: dict = field(default_factory=dict)
    fix: str | None = None  # catalogue key of what to do, where something is to be done

    def to_dict(self) -> dict:
        return {"check": self.check, "status": self.status, "key": self.key, "values": self.values, "fix": self.fix}


def check_models() -> Finding:
    """Every registered model is present and its sha256 is the registered one."""
    where = models_dir()
    try:
        names = sorted(load_registry(where))
        for name in names:
            resolve_model(name, where)
    except EngagementError as exc:
        return Finding("models", "fail", "doctor.models.fail", {"error": str(exc)}, "doctor.models.fix")
    return Finding("models", "ok", "doctor.models.ok", {"n": len(names), "dir": str(where)})


def _fields(buf: bytes, pos: int, end: int):
    """(field number, start, end) of each length-delimited field of one protobuf message."""
    while pos < end:
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        elif wire == 2:
            size, pos = _varint(buf, pos)
            yield key >> 3, pos, pos + size
            pos += size
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def onnx_op_types(path: Path) -> set[str]:
    """The operator types of an ONNX file's main graph, read from its protobuf fields
    (ModelProto.graph = 7, GraphProto.node = 1, NodeProto.op_type = 4) without the `onnx`
    package, which only the training extra installs. Metadata text naming an operator (a float
    model saying which int8 file it came from) is not counted."""
    buf = path.read_bytes()
    ops: set[str] = set()
    for number, start, end in _fields(buf, 0, len(buf)):
        if number != 7:
            continue
        for node_no, n_start, n_end in _fields(buf, start, end):
            if node_no == 1:
                ops.update(buf[a:b].decode() for f, a, b in _fields(buf, n_start, n_end) if f == 4)
    return ops


def _quantized(path: Path) -> bool:
    return bool(onnx_op_types(path) & QUANTIZED_OPS)


def check_onnx_runtime() -> Finding:
    """ONNX Runtime loads every shipped ONNX model; says which of them hold integer kernels."""
    try:
        import onnxruntime as ort

        onnx = [r for r in load_registry().values() if r.format == "onnx"]
        paths = [resolve_model(r.name) for r in onnx]
        for path in paths:
            onnx_session(path)
        quantized = sorted(r.name for r, p in zip(onnx, paths) if _quantized(p))
    except (EngagementError, ImportError, OSError, RuntimeError, ValueError, IndexError) as exc:
        return Finding("onnxruntime", "fail", "doctor.onnxruntime.fail", {"error": str(exc)}, "doctor.onnxruntime.fix")
    return Finding("onnxruntime", "ok", "doctor.onnxruntime.ok",
                   {"version": ort.__version__, "n": len(paths), "int8": quantized})


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags on Linux (/proc/cpuinfo); None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return None


def check_cpu(int8_models: list[str] | None, flags: set[str] | None) -> Finding:
    """AVX2 / VNNI, and whether the models' answers depend on them (only int8 graphs do);
    `int8_models` None: the models could not be read (the ONNX Runtime check says why)."""
    values = {"machine": platform.machine(), "avx2": None, "vnni": None, "int8": int8_models}
    if flags is not None:
        values.update(avx2="avx2" in flags, vnni=bool({"avx512_vnni", "avx_vnni"} & flags))
    if int8_models is None:
        return Finding("cpu", "warn", "doctor.cpu.unknown", values, "doctor.onnxruntime.fix")
    if not int8_models:
        return Finding("cpu", "ok", "doctor.cpu.float", values)
    if values["avx2"] and not values["vnni"]:
        return Finding("cpu", "warn", "doctor.cpu.int8_risky", values, "doctor.cpu.fix")
    return Finding("cpu", "ok", "doctor.cpu.int8", values)


def check_database(url: str | None = None) -> Finding:
    """The database answers and its schema version is one this software reads."""
    url = url or default_db_url()
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return Finding("database", "ok", "doctor.database.none_yet", {"path": str(path)})
    try:
        store = Store.open(url, create=False, read_only=True)
    except EngagementError as exc:
        return Finding("database", "fail", "doctor.database.fail", {"error": str(exc)}, "doctor.database.fix")
    try:
        with store.engine.connect() as conn:
            row = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).first()
    finally:
        store.close()
    version = int(row[0]) if row is not None else None
    values = {"dialect": store.engine.dialect.name, "version": version, "expected": schema.SCHEMA_VERSION}
    if version != schema.SCHEMA_VERSION:
        return Finding("database", "warn", "doctor.database.old", values, "doctor.database.upgrade")
    return Finding("database", "ok", "doctor.database.ok", values)


def check_data_dir(where: Path | None = None) -> Finding:
    """The data directory can be written, is the owner's alone (POSIX), and has room."""
    where = where or data_dir()
    probe = where if where.exists() else next((p for p in where.parents if p.exists()), where)
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".doctor-"):
            pass
        free_gb = shutil.disk_usage(probe).free / 1e9
    except OSError as exc:
        return Finding("data_dir", "fail", "doctor.data_dir.fail", {"dir": str(where), "error": exc.strerror or str(exc)},
                       "doctor.data_dir.fix")
    values = {"dir": str(where), "free_gb": round(free_gb, 1)}
    if os.name == "posix" and where.exists() and where.stat().st_mode & 0o077:
        return Finding("data_dir", "warn", "doctor.data_dir.open", {**values, "mode": oct(where.stat().st_mode & 0o777)},
                       "doctor.data_dir.chmod")
    if free_gb < MIN_FREE_GB:
        return Finding("data_dir", "warn", "doctor.data_dir.low", {**values, "min_gb": MIN_FREE_GB}, "doctor.data_dir.free")
    return Finding("data_dir", "ok", "doctor.data_dir.ok", values)


def check_camera() -> Finding:
    """Camera devices, counted without opening one (Linux: /dev/video*); elsewhere not counted."""
    if not sys.platform.startswith("linux"):
        return Finding("camera", "ok", "doctor.camera.unchecked", {"platform": sys.platform})
    devices = sorted(str(p) for p in Path("/dev").glob("video*"))
    if not devices:
        return Finding("camera", "warn", "doctor.camera.none", {}, "doctor.camera.fix")
    return Finding("camera", "ok", "doctor.camera.ok", {"devices": devices})


def check_screen() -> Finding:
    """The display can be connected to for `live --source screen` (no pixel is grabbed)."""
    try:
        import mss

        with mss.MSS() as screen:
            monitors = screen.monitors[1:]
    except Exception as exc:  # noqa: BLE001 - mss raises its own ScreenShotError and OS errors alike
        return Finding("screen", "warn", "doctor.screen.none", {"error": str(exc).splitlines()[0] if str(exc) else
                                                                   type(exc).__name__}, "doctor.screen.fix")
    sizes = [f"{m['width']}x{m['height']}" for m in monitors]
    return Finding("screen", "ok", "doctor.screen.ok", {"monitors": sizes})


def check_display() -> Finding:
    """Whether a browser can open the dashboard on this machine (Linux needs a graphical session)."""
    if not has_display():
        return Finding("display", "warn", "doctor.display.none", {}, "doctor.display.fix")
    return Finding("display", "ok", "doctor.display.ok", {"platform": sys.platform})


def check_extra(module: str, extra: str, needed: bool = False) -> Finding:
    """An optional extra: Ray (`cluster`) for batch, psycopg (`postgres`) for a PostgreSQL URL."""
    try:
        version = __import__(module).__version__
    except ImportError:
        return Finding(extra, "fail" if needed else "warn", "doctor.extra.missing", {"module": module, "extra": extra},
                       "doctor.extra.fix")
    return Finding(extra, "ok", "doctor.extra.ok", {"module": module, "version": version})


def run_checks(db_url: str | None = None) -> list[Finding]:
    """Every check, in the order an operator fixes things: the install, then the machine."""
    url = db_url or default_db_url()
    onnx = check_onnx_runtime()
    findings = [check_models(), onnx, check_cpu(onnx.values.get("int8"), cpu_flags()), check_database(url),
                check_data_dir(), check_camera(), check_screen(), check_display(), check_extra("ray", "cluster")]
    findings.append(check_extra("psycopg", "postgres", needed=url.startswith("postgresql")))
    return findings
