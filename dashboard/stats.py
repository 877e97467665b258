"""95 % confidence intervals for the researcher's aggregate points.

A session's point (its on-screen share or score) is the mean over the seconds the minimum group
size k let through; its interval comes from the spread *between people*: each person's mean over
evenly spaced seconds (`queries.person_means`), then mean ± 1.96·sd/√n over the n people. An
agenda item's point across sessions is the mean of its sessions' values, with the interval from
the spread between sessions. Fewer than two people (or sessions) give no interval.
"""

from __future__ import annotations

import pandas as pd

Z95 = 1.96  # two-sided 95 % under a normal approximation


def half_widths(persons: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of `keys`: the 95 % half-width of the mean between people, and n people.
    `persons` holds each person's sum (`total`) and count (`n`) of the measure, per title."""
    per_person = persons.groupby([*keys, "person"], dropna=False)[["total", "n"]].sum().reset_index()
    per_person = per_person[per_person["n"] > 0]
    per_person["mean"] = per_person["total"] / per_person["n"]
    grouped = per_person.groupby(keys, dropna=False)["mean"]
    out = pd.DataFrame({"sd": grouped.std(ddof=1), "n": grouped.size()}).reset_index()
    out["half"] = Z95 * out["sd"] / out["n"] ** 0.5
    return out[[*keys, "half", "n"]]


def with_interval(points: pd.DataFrame, persons: pd.DataFrame, keys: list[str], field: str) -> pd.DataFrame:
    """`points` plus `<field>_lo`, `<field>_hi` (clipped to 0..1) and `<field>_n` (people), from
    `persons` (`queries.person_means` of that field)."""
    halves = half_widths(persons, keys) if not persons.empty else pd.DataFrame(columns=[*keys, "half", "n"])
    out = points.merge(halves, on=keys, how="left")
    half = pd.to_numeric(out["half"], errors="coerce")
    out[f"{field}_lo"] = (out[field] - half).clip(0, 1)
    out[f"{field}_hi"] = (out[field] + half).clip(0, 1)
    out[f"{field}_n"] = pd.to_numeric(out["n"], errors="coerce").fillna(0).astype(int)
    return out.drop(columns=["half", "n"])


def across_sessions(items: pd.DataFrame, field: str) -> pd.DataFrame:
    """Per agenda title: the mean of its sessions' values, the 95 % interval between sessions,
    how many sessions and people stand behind it."""
    known = items.dropna(subset=[field])
    grouped = known.groupby("title")
    out = pd.DataFrame(
        {
            field: grouped[field].mean(),
            "sd": grouped[field].std(ddof=1),
            "sessions": grouped.size(),
            "people": grouped[f"{field}_n"].sum(),
        }
    ).reset_index()
    half = Z95 * out["sd"] / out["sessions"] ** 0.5
    out[f"{field}_lo"] = (out[field] - half).clip(0, 1)
    out[f"{field}_hi"] = (out[field] + half).clip(0, 1)
    return out.drop(columns=["sd"])
