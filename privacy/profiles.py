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

from dataclasses import dataclass, replace

from engagement.core.errors import ConfigError
from engagement.core.i18n import LANGUAGES, translate

DEFAULT_PROFILE = "id-pdp"


def _in_every_language(key: str) -> dict[str, str]:
    return {lang: translate(key, lang) for lang in LANGUAGES}


@dataclass(frozen=True)
class Profile:
    name: str
    expression_allowed: bool
    individual_views_allowed: bool

    @property
    def title(self) -> dict[str, str]:
        """The profile's name in words, per language (catalogue key `dpia.profile.<name>.title`)."""
        return _in_every_language(f"dpia.profile.{self.name}.title")

    @property
    def legal_basis(self) -> dict[str, str]:
        """The legal basis of processing, per language, as the DPIA states it."""
        return _in_every_language(f"dpia.profile.{self.name}.legal_basis")

    def analysis_options(self, options):
        """The run's `AnalysisOptions` with the expression stage forced off where not allowed."""
        if not self.expression_allowed and getattr(options, "expression", False):
            return replace(options, expression=False)
        return options


PROFILES: dict[str, Profile] = {
    "id-pdp": Profile(name="id-pdp", expression_allowed=True, individual_views_allowed=True),
    "eu-ai-act": Profile(name="eu-ai-act", expression_allowed=False, individual_views_allowed=False),
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
