"""Compliance profiles: which stages may run and which views may open, per legal frame.

- `id-pdp` (default): Indonesia UU 27/2022. Processing on explicit consent; expression
  probabilities allowed as a facilitator-feedback signal; individual views allowed but off by
  default in the dashboard and audited each time they are opened.
- `eu-ai-act`: EU AI Act Art. 5(1)(f) forbids inferring emotions of people in education. The
  expression stage never runs (its model is not even loaded) and no expression column is written;
  only attention signals (face presence, head pose, gaze, eye openness, blinks) remain. Individual
  views are off as well: monitoring a learner's behaviour is a high-risk use (Annex III 3(d)), so
  the profile keeps to the class-level aggregate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from engagement.errors import ConfigError

DEFAULT_PROFILE = "id-pdp"


@dataclass(frozen=True)
class Profile:
    name: str
    expression_allowed: bool
    individual_views_allowed: bool
    title: dict[str, str]
    legal_basis: dict[str, str]

    def analysis_options(self, options):
        """The run's `AnalysisOptions` with the expression stage forced off where not allowed."""
        if not self.expression_allowed and getattr(options, "expression", False):
            return replace(options, expression=False)
        return options

    def require_expression(self) -> None:
        """Call before loading the expression model: refuses under a profile that forbids it."""
        if not self.expression_allowed:
            raise ConfigError(
                f"the {self.name} compliance profile forbids emotion/expression inference; "
                "the expression model is not loaded"
            )

    def guard_windows(self, rows: Iterable) -> Iterator:
        """Pass (track id, WindowFeatures) pairs through, refusing any that carries expression
        values under a profile that forbids them: a second lock behind `analysis_options`."""
        for item in rows:
            window = item[1] if isinstance(item, tuple) else item
            if not self.expression_allowed and getattr(window, "expression", None) is not None:
                raise ConfigError(
                    f"the {self.name} profile forbids storing expression data, but a window carries it"
                )
            yield item


PROFILES: dict[str, Profile] = {
    "id-pdp": Profile(
        name="id-pdp",
        expression_allowed=True,
        individual_views_allowed=True,
        title={
            "en": "Indonesia Personal Data Protection Law (UU 27/2022)",
            "id": "Undang-Undang Pelindungan Data Pribadi (UU 27/2022)",
        },
        legal_basis={
            "en": "Explicit, recorded consent of each participant for each purpose (UU 27/2022 Art. 20(2)(a), "
            "22 and 24); face images are biometric, i.e. specific personal data (Art. 4(2)(b)).",
            "id": "Persetujuan eksplisit dan tercatat dari setiap peserta untuk setiap tujuan (UU 27/2022 "
            "Pasal 20 ayat (2) huruf a, Pasal 22 dan 24); citra wajah adalah data biometrik, yaitu data "
            "pribadi yang bersifat spesifik (Pasal 4 ayat (2) huruf b).",
        },
    ),
    "eu-ai-act": Profile(
        name="eu-ai-act",
        expression_allowed=False,
        individual_views_allowed=False,
        title={
            "en": "EU AI Act, Art. 5(1)(f): no emotion recognition in education",
            "id": "EU AI Act Pasal 5 ayat (1) huruf f: tanpa pengenalan emosi dalam pendidikan",
        },
        legal_basis={
            "en": "Explicit consent (GDPR Art. 9(2)(a)); emotion inference is prohibited in education "
            "(EU AI Act Art. 5(1)(f)), so only attention signals are computed.",
            "id": "Persetujuan eksplisit (GDPR Pasal 9 ayat (2) huruf a); inferensi emosi dilarang dalam "
            "pendidikan (EU AI Act Pasal 5 ayat (1) huruf f), sehingga hanya sinyal atensi yang dihitung.",
        },
    ),
}


def get_profile(name: str | None) -> Profile:
    """The profile called `name` (None: the default, id-pdp). Unknown -> ConfigError."""
    key = DEFAULT_PROFILE if name in (None, "") else str(name).strip().lower()
    try:
        return PROFILES[key]
    except KeyError:
        raise ConfigError(
            f"unknown compliance profile {name!r}; choose one of: {', '.join(sorted(PROFILES))}"
        ) from None
