"""DPIA / record of processing, generated from the live configuration (UU 27/2022 Art. 31, 34).

Everything variable comes from what is in force: the compliance profile, the retention policy,
the consent records, the cohort keys, the purge receipts and the audit chain's state. The
controller fills in its own name and contact; the rest is not hand-written, so it cannot drift
from what the software actually does.
"""

from __future__ import annotations

import html
import json
from datetime import datetime

from sqlalchemy import func, select

from engagement import schema
from engagement.errors import ConfigError
from engagement.records import EXPRESSION_LABELS, FEATURE_NAMES
from engagement import schema as tables
from privacy.audit import AuditLog
from privacy.profiles import Profile
from privacy.pseudonym import keys_dir
from privacy.retention import TIERS, RetentionPolicy, format_period
from privacy.timeutil import as_utc, iso, utcnow

T = {
    "title": {"en": "Data Protection Impact Assessment and Record of Processing",
              "id": "Penilaian Dampak Pelindungan Data Pribadi dan Catatan Pemrosesan"},
    "generated": {"en": "Generated from the live configuration on", "id": "Dibuat dari konfigurasi yang berlaku pada"},
    "controller": {"en": "Controller", "id": "Pengendali Data Pribadi"},
    "controller_text": {
        "en": "[Name, address and contact of the training institute; name of the data protection officer]",
        "id": "[Nama, alamat, dan kontak lembaga pelatihan; nama pejabat pelindungan data pribadi]",
    },
    "profile": {"en": "Compliance profile in force", "id": "Profil kepatuhan yang berlaku"},
    "purposes": {"en": "Purposes of processing", "id": "Tujuan pemrosesan"},
    "purpose_feedback": {
        "en": "Facilitator feedback: show facilitators when the class's attention rose or fell during a "
              "session, aligned to the agenda, so they can adjust pace and method.",
        "id": "Umpan balik bagi fasilitator: menunjukkan kapan atensi kelas naik atau turun selama sesi, "
              "diselaraskan dengan agenda, agar fasilitator dapat menyesuaikan tempo dan metode.",
    },
    "purpose_research": {
        "en": "Research (only for participants who consented to it separately): pseudonymised per-second "
              "data to study engagement trends and evaluate models.",
        "id": "Penelitian (hanya untuk peserta yang memberikan persetujuan terpisah): data per detik yang "
              "dipseudonimkan untuk mempelajari tren keterlibatan dan mengevaluasi model.",
    },
    "legal_basis": {"en": "Legal basis", "id": "Dasar pemrosesan"},
    "categories": {"en": "Categories of data subjects and personal data", "id": "Kategori subjek data dan data pribadi"},
    "subjects": {
        "en": "Data subjects: participants of online training sessions who gave consent (or were present "
              "in a session covered by a facilitator's attestation).",
        "id": "Subjek data: peserta sesi pelatihan daring yang telah memberikan persetujuan (atau hadir dalam "
              "sesi yang dicakup oleh pernyataan fasilitator).",
    },
    "cat_video": {
        "en": "Video frames with faces (biometric, specific personal data): processed in memory on the device "
              "only; never stored, never transmitted.",
        "id": "Bingkai video yang memuat wajah (data biometrik, data pribadi yang bersifat spesifik): hanya "
              "diproses di memori perangkat; tidak pernah disimpan dan tidak pernah dikirim.",
    },
    "cat_features": {
        "en": "Per-second attention signals per participant (numbers only)",
        "id": "Sinyal atensi per detik untuk setiap peserta (hanya angka)",
    },
    "cat_expression": {
        "en": "Per-second facial expression probabilities per participant",
        "id": "Probabilitas ekspresi wajah per detik untuk setiap peserta",
    },
    "cat_no_expression": {
        "en": "No expression or emotion data: the expression stage does not run under this profile.",
        "id": "Tidak ada data ekspresi atau emosi: tahap ekspresi tidak dijalankan pada profil ini.",
    },
    "cat_estimates": {
        "en": "Per-second engagement estimates per participant (level, score, uncertainty)",
        "id": "Estimasi keterlibatan per detik untuk setiap peserta (tingkat, skor, ketidakpastian)",
    },
    "cat_aggregates": {
        "en": "Class-level timeline and alerts (suppressed below the minimum group size)",
        "id": "Lini masa tingkat kelas dan peringatan (disembunyikan di bawah ukuran kelompok minimum)",
    },
    "cat_consent": {
        "en": "Consent records: pseudonym, scope, notice version and language, times, evidence reference",
        "id": "Catatan persetujuan: pseudonim, cakupan, versi dan bahasa pemberitahuan, waktu, rujukan bukti",
    },
    "cat_identity": {
        "en": "Identities (names, e-mail, NIP) are not stored: only keyed pseudonyms (HMAC-SHA256).",
        "id": "Identitas (nama, surel, NIP) tidak disimpan: hanya pseudonim berkunci (HMAC-SHA256).",
    },
    "retention": {"en": "Retention periods", "id": "Masa retensi"},
    "tier": {"en": "Data tier", "id": "Tingkatan data"},
    "period": {"en": "Period", "id": "Jangka waktu"},
    "never_stored": {"en": "never stored", "id": "tidak pernah disimpan"},
    "tier_raw_frames": {"en": "Raw video frames", "id": "Bingkai video mentah"},
    "tier_features": {"en": "Per-second features", "id": "Fitur per detik"},
    "tier_timelines": {"en": "Per-participant timelines", "id": "Lini masa per peserta"},
    "tier_aggregates": {"en": "Class aggregates", "id": "Agregat kelas"},
    "tier_audit": {"en": "Audit log and receipts", "id": "Log audit dan tanda terima"},
    "retention_note": {
        "en": "Data past its period is deleted by `engagement privacy purge`, which also runs when an analysis "
              "or the dashboard starts; each purge leaves a receipt (counts, time, policy hash).",
        "id": "Data yang melewati masa retensinya dihapus oleh `engagement privacy purge`, yang juga berjalan "
              "setiap kali analisis atau dasbor dimulai; setiap penghapusan meninggalkan tanda terima (jumlah, "
              "waktu, hash kebijakan).",
    },
    "recipients": {"en": "Recipients", "id": "Penerima"},
    "rec_facilitator": {
        "en": "Facilitators of the session: class-level timeline; individual views only where the profile "
              "allows them, off by default, and each opening is audited.",
        "id": "Fasilitator sesi: lini masa tingkat kelas; tampilan individual hanya jika profil mengizinkannya, "
              "nonaktif secara bawaan, dan setiap pembukaan dicatat dalam log audit.",
    },
    "rec_research": {
        "en": "Researchers of the institute: pseudonymised exports of participants with research consent; "
              "each export is audited.",
        "id": "Peneliti lembaga: ekspor data terpseudonimisasi dari peserta yang menyetujui penelitian; setiap "
              "ekspor dicatat dalam log audit.",
    },
    "rec_officer": {
        "en": "Data protection officer: consent records, audit log, purge receipts.",
        "id": "Pejabat pelindungan data pribadi: catatan persetujuan, log audit, tanda terima penghapusan.",
    },
    "rec_none": {
        "en": "No third parties and no transfer outside Indonesia: processing runs on the institute's own devices.",
        "id": "Tidak ada pihak ketiga dan tidak ada transfer ke luar wilayah Indonesia: pemrosesan berjalan di "
              "perangkat milik lembaga sendiri.",
    },
    "safeguards": {"en": "Safeguards", "id": "Langkah pengamanan"},
    "sg": {
        "en": [
            "Default deny: a face not tied to a consenting participant is neither analysed nor stored.",
            "Withdrawal of consent stops processing from that moment and deletes the participant's data.",
            "Processing on the device; video frames never leave memory; previews and snapshots are masked and "
            "re-checked by a face detector before they are shown or saved.",
            "Pseudonyms are keyed HMAC-SHA256 with a per-cohort key kept apart from the database (file mode 0600); "
            "destroying a key makes its pseudonyms unlinkable.",
            "Append-only, hash-chained audit log of analyses, consent changes, exports, individual views, policy "
            "changes, purges, subject requests and key destruction; `engagement privacy audit verify` detects "
            "edits, deletions and reordering.",
            "Class-level results are suppressed below a minimum group size.",
            "Subject access and erasure by command, each audited, with a receipt for erasure.",
        ],
        "id": [
            "Tolak secara bawaan: wajah yang tidak dapat dikaitkan dengan peserta yang memberikan persetujuan tidak "
            "dianalisis dan tidak disimpan.",
            "Penarikan persetujuan menghentikan pemrosesan sejak saat itu dan menghapus data peserta tersebut.",
            "Pemrosesan dilakukan di perangkat; bingkai video tidak pernah keluar dari memori; pratinjau dan "
            "cuplikan disamarkan dan diperiksa ulang dengan pendeteksi wajah sebelum ditampilkan atau disimpan.",
            "Pseudonim dibuat dengan HMAC-SHA256 berkunci, dengan kunci per angkatan yang disimpan terpisah dari "
            "basis data (mode berkas 0600); pemusnahan kunci membuat pseudonimnya tidak dapat lagi dikaitkan.",
            "Log audit yang hanya dapat ditambah dan berantai hash untuk analisis, perubahan persetujuan, ekspor, "
            "tampilan individual, perubahan kebijakan, penghapusan, permintaan subjek data, dan pemusnahan kunci; "
            "`engagement privacy audit verify` mendeteksi pengubahan, penghapusan, dan perubahan urutan entri.",
            "Hasil tingkat kelas disembunyikan di bawah ukuran kelompok minimum.",
            "Akses dan penghapusan data oleh subjek data melalui perintah, masing-masing dicatat dalam log audit, "
            "dengan tanda terima untuk penghapusan.",
        ],
    },
    "state": {"en": "Current state", "id": "Keadaan saat ini"},
    "item": {"en": "Item", "id": "Butir"},
    "value": {"en": "Value", "id": "Nilai"},
    "st_sessions": {"en": "Sessions / analysis runs", "id": "Sesi / proses analisis"},
    "st_consents": {"en": "Active consents (facilitator feedback / research)",
                    "id": "Persetujuan aktif (umpan balik fasilitator / penelitian)"},
    "st_withdrawn": {"en": "Withdrawn consents", "id": "Persetujuan yang ditarik"},
    "st_attest": {"en": "Active session attestations", "id": "Pernyataan sesi yang aktif"},
    "st_keys": {"en": "Cohort keys in use / destroyed", "id": "Kunci angkatan yang digunakan / dimusnahkan"},
    "st_purge": {"en": "Last purge", "id": "Penghapusan terakhir"},
    "st_audit": {"en": "Audit log", "id": "Log audit"},
    "st_policy": {"en": "Policy hash (source)", "id": "Hash kebijakan (sumber)"},
    "none": {"en": "none yet", "id": "belum ada"},
    "intact": {"en": "intact", "id": "utuh"},
    "tampered": {"en": "TAMPERED", "id": "TELAH DIUBAH"},
    "entries": {"en": "entries", "id": "entri"},
    "risks": {"en": "Risks and residual risk", "id": "Risiko dan risiko sisa"},
    "risks_text": {
        "en": [
            "Systematic monitoring of participants (UU 27/2022 Art. 34): mitigated by consent per purpose, "
            "class-level default views and short retention.",
            "Misreading attention signals as performance: results are indicative for pacing, never for assessment "
            "of individuals.",
            "Re-identification from pseudonyms: requires the cohort key, which is kept apart and can be destroyed.",
        ],
        "id": [
            "Pemantauan sistematis terhadap peserta (UU 27/2022 Pasal 34): dimitigasi dengan persetujuan per "
            "tujuan, tampilan bawaan tingkat kelas, dan masa retensi yang singkat.",
            "Salah tafsir sinyal atensi sebagai kinerja: hasil hanya indikatif untuk mengatur tempo, tidak pernah "
            "untuk menilai individu.",
            "Identifikasi ulang dari pseudonim: memerlukan kunci angkatan, yang disimpan terpisah dan dapat "
            "dimusnahkan.",
        ],
    },
}


def _t(key: str, lang: str):
    return T[key][lang]


def _state(store, policy: RetentionPolicy, lang: str) -> list[tuple[str, str]]:
    c, k, pr = tables.consent_records, tables.cohort_key_events, tables.purge_receipts
    with store.transaction() as conn:
        n_sessions = conn.execute(select(func.count()).select_from(schema.sessions)).scalar_one()
        n_runs = conn.execute(select(func.count()).select_from(schema.runs)).scalar_one()

        def active(scope):
            return conn.execute(select(func.count()).select_from(c).where(
                c.c.kind == "participant", c.c.scope == scope, c.c.withdrawn_at.is_(None))).scalar_one()

        fb, rs = active("facilitator_feedback"), active("research")
        withdrawn = conn.execute(select(func.count()).select_from(c).where(c.c.withdrawn_at.is_not(None))).scalar_one()
        attest = conn.execute(select(func.count(func.distinct(c.c.session_name))).where(
            c.c.kind == "attestation", c.c.withdrawn_at.is_(None))).scalar_one()
        destroyed = conn.execute(select(func.count()).select_from(k).where(k.c.event == "destroyed")).scalar_one()
        last = conn.execute(select(pr.c.at, pr.c.counts_json).where(pr.c.kind == "purge").order_by(pr.c.id.desc()).limit(1)).first()
    in_use = len(list(keys_dir().glob("*.key"))) if keys_dir().exists() else 0
    verify = AuditLog(store).verify()
    if last:
        total = sum(json.loads(last.counts_json).values())
        last_text = f"{iso(as_utc(last.at))} ({total})"
    else:
        last_text = _t("none", lang)
    audit_text = f"{_t('intact' if verify.ok else 'tampered', lang)}, {verify.entries} {_t('entries', lang)}"
    return [
        (_t("st_sessions", lang), f"{n_sessions} / {n_runs}"),
        (_t("st_consents", lang), f"{fb} / {rs}"),
        (_t("st_withdrawn", lang), str(withdrawn)),
        (_t("st_attest", lang), str(attest)),
        (_t("st_keys", lang), f"{in_use} / {destroyed}"),
        (_t("st_purge", lang), last_text),
        (_t("st_audit", lang), audit_text),
        (_t("st_policy", lang), f"{policy.hash[:16]}… ({policy.source})"),
    ]


def build(store, policy: RetentionPolicy, profile: Profile, lang: str) -> tuple[str, list]:
    """The report as (title, sections); each section is (heading, blocks) and a block is
    ("p", text) | ("ul", [text]) | ("table", [header], [[cell]])."""
    if lang not in ("id", "en"):
        raise ConfigError(f"DPIA language must be 'id' or 'en', got {lang!r}")
    features = ", ".join(FEATURE_NAMES)
    categories = [
        _t("subjects", lang),
        _t("cat_video", lang),
        f"{_t('cat_features', lang)}: {features}.",
        (f"{_t('cat_expression', lang)}: {', '.join(EXPRESSION_LABELS)}." if profile.expression_allowed
         else _t("cat_no_expression", lang)),
        _t("cat_estimates", lang) + ".",
        _t("cat_aggregates", lang) + ".",
        _t("cat_consent", lang) + ".",
        _t("cat_identity", lang),
    ]
    rows = [[_t("tier_raw_frames", lang), _t("never_stored", lang)]]
    rows += [[_t(f"tier_{tier}", lang), format_period(policy.periods[tier])] for tier in TIERS]
    recipients = [_t("rec_facilitator", lang) if profile.individual_views_allowed
                  else _t("rec_facilitator", lang).split(";")[0] + ".",
                  _t("rec_research", lang), _t("rec_officer", lang), _t("rec_none", lang)]
    views = {"en": ("allowed (off by default, audited)", "not allowed"),
             "id": ("diizinkan (nonaktif secara bawaan, dicatat dalam log audit)", "tidak diizinkan")}[lang]
    expr = {"en": ("runs", "never runs"), "id": ("dijalankan", "tidak pernah dijalankan")}[lang]
    profile_rows = [
        [{"en": "Profile", "id": "Profil"}[lang], f"{profile.name}: {profile.title[lang]}"],
        [{"en": "Expression stage", "id": "Tahap ekspresi"}[lang], expr[0] if profile.expression_allowed else expr[1]],
        [{"en": "Individual views", "id": "Tampilan individual"}[lang],
         views[0] if profile.individual_views_allowed else views[1]],
    ]
    sections = [
        (_t("controller", lang), [("p", _t("controller_text", lang))]),
        (_t("profile", lang), [("table", [_t("item", lang), _t("value", lang)], profile_rows)]),
        (_t("purposes", lang), [("ul", [_t("purpose_feedback", lang), _t("purpose_research", lang)])]),
        (_t("legal_basis", lang), [("p", profile.legal_basis[lang])]),
        (_t("categories", lang), [("ul", categories)]),
        (_t("retention", lang), [("table", [_t("tier", lang), _t("period", lang)], rows), ("p", _t("retention_note", lang))]),
        (_t("recipients", lang), [("ul", recipients)]),
        (_t("safeguards", lang), [("ul", _t("sg", lang))]),
        (_t("risks", lang), [("ul", _t("risks_text", lang))]),
        (_t("state", lang), [("table", [_t("item", lang), _t("value", lang)], [list(x) for x in _state(store, policy, lang)])]),
    ]
    return _t("title", lang), sections


def render_dpia(store, policy: RetentionPolicy, profile: Profile, lang: str = "id", fmt: str = "md", *,
                now: datetime | None = None) -> str:
    """The DPIA / record of processing as Markdown or HTML, in Bahasa Indonesia or English."""
    if fmt not in ("md", "html"):
        raise ConfigError(f"DPIA format must be 'md' or 'html', got {fmt!r}")
    title, sections = build(store, policy, profile, lang)
    stamp = f"{_t('generated', lang)} {iso(now or utcnow())}"
    return _markdown(title, stamp, sections) if fmt == "md" else _html(title, stamp, sections, lang)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(title: str, stamp: str, sections: list) -> str:
    out = [f"# {title}", "", f"_{stamp}_", ""]
    for heading, blocks in sections:
        out += [f"## {heading}", ""]
        for block in blocks:
            if block[0] == "p":
                out += [block[1], ""]
            elif block[0] == "ul":
                out += [f"- {item}" for item in block[1]] + [""]
            else:
                _, header, rows = block
                out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
                out.append("|" + "---|" * len(header))
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
                out.append("")
    return "\n".join(out)


def _html(title: str, stamp: str, sections: list, lang: str) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}">',
        '<head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.5}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3rem .6rem;text-align:left}</style>",
        "</head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p><em>{e(stamp)}</em></p>",
    ]
    for heading, blocks in sections:
        out.append(f"<h2>{e(heading)}</h2>")
        for block in blocks:
            if block[0] == "p":
                out.append(f"<p>{e(block[1])}</p>")
            elif block[0] == "ul":
                out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in block[1]) + "</ul>")
            else:
                _, header, rows = block
                out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>")
                out += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows]
                out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out)
