"""The facilitator's agenda editor: add an item at a clock time or an offset, import a CSV,
remove an item after a confirmation, and undo the last removal or import.

Starts are shown with the session's clock (`Clock.label`), as in the ranking, the chart and the
downloadable summary, and read back by `engagement.app.agenda.read_start`, which refuses a time
outside the session in the user's language.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from dashboard import clock, queries, services
from dashboard.page_text import current_lang, t
from engagement.app import agenda as agenda_store
from engagement.core.store import Store


@dataclass(frozen=True)
class Target:
    """The session whose agenda is edited, and how its times read."""

    store: Store
    session_id: int
    name: str
    when: clock.Clock
    span: agenda_store.SessionSpan
    actor: str


def span_of(when: clock.Clock, live: bool) -> agenda_store.SessionSpan:
    """What a typed start is checked against: the local time of day of second 0 (when the
    recording's start is known) and the length (open while the analysis still runs)."""
    of_day = None
    if when.start is not None:
        local = when.start.astimezone(when.tz)
        of_day = local.hour * 3600 + local.minute * 60 + local.second
    return agenda_store.SessionSpan(of_day, None if live else when.length_s)


def _audit(target: Target, change: str, **more: object) -> None:
    services.audit(target.store, services.AGENDA_CHANGED, target.actor, {"session": target.name, "change": change, **more})


def _error(exc: Exception) -> None:
    detail = exc.text(current_lang()) if isinstance(exc, agenda_store.AgendaInputError) else str(exc)
    st.error(t("agenda.invalid", detail=detail))


def _keep_for_undo(target: Target, items: pd.DataFrame, message: str, whole: bool) -> None:
    """Remember what a removal took (or the agenda an import replaced), so one click brings it
    back; undoing a removal adds the item again, keeping anything added since."""
    rows = [agenda_store.AgendaRow(int(s), str(title)) for s, title in zip(items["start_second"], items["title"])]
    st.session_state[f"agenda_undo_{target.session_id}"] = {"rows": rows, "message": message, "whole": whole}


def add_item(target: Target, start_second: int, title: str) -> None:
    """Add one item (the editor's form, and the live view's 'mark now') and audit it."""
    agenda_store.add_agenda_item(target.store, target.session_id, start_second, title)
    _audit(target, "add")
    st.session_state[f"agenda_note_{target.session_id}"] = t("agenda.added", title=title.strip(),
                                                              start=target.when.label(start_second))


def mark_now(target: Target, second: int, title: str) -> None:
    """The live view's "mark now": a one-minute item at the current second, audited."""
    title = title.strip() or t("live.mark_default", time=target.when.label(second, with_seconds=True))
    agenda_store.mark(target.store, target.session_id, second, title)
    _audit(target, "mark")
    st.session_state["live_mark_note"] = t("agenda.added", title=title, start=target.when.label(second, with_seconds=True))


def render(target: Target) -> None:
    items = queries.agenda(target.store, target.session_id)
    _undo_offer(target)
    note = st.session_state.pop(f"agenda_note_{target.session_id}", None)
    if note:
        st.success(note)
    if items.empty:
        st.caption(t("agenda.empty"))
    else:
        st.dataframe(
            pd.DataFrame({t("agenda.start"): [target.when.label(s) for s in items["start_second"]],
                          t("agenda.title"): items["title"]}),
            hide_index=True,
            width="stretch",
        )
    _add_form(target)
    _import(target, items)
    if not items.empty:
        _remove(target, items)


def _add_form(target: Target) -> None:
    with st.form(f"agenda_add_{target.session_id}", clear_on_submit=True):
        a, b = st.columns([1, 3])
        start_text = a.text_input(t("agenda.start"), placeholder=t("agenda.start_placeholder"), help=t("agenda.start_help"))
        title_text = b.text_input(t("agenda.title"))
        if st.form_submit_button(t("agenda.add")):
            try:
                add_item(target, agenda_store.read_start(start_text, target.span), title_text)
            except agenda_store.AgendaInputError as exc:
                _error(exc)
                return
            st.rerun()


def _import(target: Target, items: pd.DataFrame) -> None:
    # Pasted, not uploaded: Streamlit's file uploader draws "Drag and drop file here", "Limit
    # 200MB per file" and "Browse files" in English whatever the page's language, and no argument
    # changes them. A CSV file's text pastes the same.
    pasted = st.text_area(t("agenda.import"), key=f"agenda_csv_{target.session_id}", help=t("agenda.import_help"),
                          placeholder="0:00,Pembukaan")
    if not pasted.strip() or not st.button(t("agenda.import_apply"), key=f"agenda_csv_apply_{target.session_id}"):
        return
    try:
        rows = agenda_store.parse_agenda_csv(pasted, target.span)
    except agenda_store.AgendaInputError as exc:
        _error(exc)
        return
    _keep_for_undo(target, items, t("agenda.imported", n=len(rows)), whole=True)
    agenda_store.replace_agenda(target.store, target.session_id, rows)
    _audit(target, "import", items=len(rows))
    st.rerun()


def _remove(target: Target, items: pd.DataFrame) -> None:
    """Pick an item, press remove, then confirm: one click no longer deletes the preselected item."""
    labels = {int(i): f"{target.when.label(s)} {title}" for i, s, title in zip(items["id"], items["start_second"], items["title"])}
    remove = st.selectbox(t("agenda.remove_pick"), list(labels), format_func=lambda i: labels.get(i, ""),
                          key=f"agenda_remove_{target.session_id}")  # per session: another session's items are not options
    asking = f"agenda_confirm_{target.session_id}"
    if st.button(t("agenda.remove"), key=f"agenda_remove_ask_{target.session_id}"):
        st.session_state[asking] = int(remove)
    pending = st.session_state.get(asking)
    if pending not in labels:
        st.session_state.pop(asking, None)
        return
    row = items[items["id"] == pending].iloc[0]
    st.warning(t("agenda.remove_confirm", title=row["title"], start=target.when.label(row["start_second"])))
    yes, no = st.columns(2)
    if yes.button(t("agenda.remove_yes"), key=f"agenda_remove_yes_{target.session_id}", type="primary"):
        _keep_for_undo(target, items[items["id"] == pending], t("agenda.removed", title=row["title"]), whole=False)
        agenda_store.delete_agenda_item(target.store, int(pending))
        _audit(target, "remove")
        st.session_state.pop(asking, None)
        st.rerun()
    if no.button(t("agenda.remove_no"), key=f"agenda_remove_no_{target.session_id}"):
        st.session_state.pop(asking, None)
        st.rerun()


def _undo_offer(target: Target) -> None:
    """After a removal or an import: what happened, and a button that puts the agenda back."""
    key = f"agenda_undo_{target.session_id}"
    undo = st.session_state.get(key)
    if not undo:
        return
    text, button = st.columns([4, 1])
    text.success(undo["message"])
    if button.button(t("agenda.undo"), key=f"agenda_undo_button_{target.session_id}", icon=":material/undo:"):
        if undo["whole"]:
            agenda_store.replace_agenda(target.store, target.session_id, undo["rows"])
        else:
            for row in undo["rows"]:
                agenda_store.add_agenda_item(target.store, target.session_id, row.start_second, row.title)
        _audit(target, "undo")
        st.session_state.pop(key, None)
        st.session_state[f"agenda_note_{target.session_id}"] = t("agenda.restored")
        st.rerun()
