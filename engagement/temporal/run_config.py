"""The run's configuration record: every setting that changes a run's results, in one dict.

A run stores this record and its hash, and an export's manifest lists the record, so a result
can be traced to everything that shaped it: the analysis options (with the attention
thresholds), the temporal stage's constants (segment length and hop, the baseline window, the
short-span uncertainty, the alert rules), the minimum group size k, and the sha256 of every model
the run loads. Batch analysis compares this hash to skip recordings already analysed with the
same settings. It lives at the temporal layer because that is the lowest one that sees all of
these constants.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from engagement.core.config import AnalysisOptions, settings_hash
from engagement.core.registry import model_record
from engagement.temporal import features, stage, timeline
from engagement.temporal.model import DEFAULT_MODEL as TEMPORAL_MODEL
from engagement.vision.expression import DEFAULT_MODEL as EXPRESSION_MODEL
from engagement.vision.landmarks import MODEL_NAME as LANDMARKER_MODEL

__all__ = ["run_models", "run_settings", "run_settings_hash", "temporal_settings"]


def temporal_settings() -> dict:
    """The temporal stage's constants that change scores, class figures or alerts (read at call
    time, so a changed constant changes the record)."""
    return {
        "segment_s": features.SEGMENT_S,
        "hop_s": features.HOP_S,
        "min_present_s": features.MIN_PRESENT_S,
        "baseline_s": features.BASELINE_S,
        "baseline_min_s": features.BASELINE_MIN_S,
        "short_span_uncertainty": stage.SHORT_SPAN_UNCERTAINTY,
        "alerts": asdict(timeline.AlertRules()),
    }


def run_models(options: AnalysisOptions) -> tuple[str, ...]:
    """The registered models a run with `options` loads (the expression CNN only when it runs)."""
    always = (LANDMARKER_MODEL, TEMPORAL_MODEL)
    return (*always, EXPRESSION_MODEL) if options.expression else always


def run_settings(options: AnalysisOptions, models_dir: Path | None = None, *, k_min: int | None = None) -> dict:
    """The full record. The options' own keys stay at the top level (older runs stored only
    those, so readers of `config` keep working); the rest is added beside them."""
    return {
        **options.to_dict(),
        "temporal": temporal_settings(),
        "k_min": timeline.K_MIN if k_min is None else int(k_min),
        "models": {name: model_record(name, models_dir).sha256 for name in run_models(options)},
    }


def run_settings_hash(options: AnalysisOptions, models_dir: Path | None = None, *, k_min: int | None = None) -> str:
    """The hash a run with `options` records (what batch compares to skip finished recordings)."""
    return settings_hash(run_settings(options, models_dir, k_min=k_min))
