"""Track ids from the tiles' name labels: one id per display name, wherever its tile goes.

The meeting app reorders tiles whenever someone speaks, joins or leaves, so a tile position is
a weak key and a thumbnail match (`engagement.vision.tile_ids`) fails between feeds that look
alike. The name the participant chose to show is printed in their tile, camera on or off, and
survives all of that: reorder, camera off and on, leaving and rejoining, a new layout.

When a tile's label is read (its first frame, a cut of its content, a new layout, or after
`reread_s` seconds if the label strip changed) the text is handed to `name_key` at once, which turns it into a keyed
pseudonym (the session's HMAC, `privacy.gate.ConsentGate.label_key`); the clear text goes no
further and is dropped. Each key keeps one track id for the whole run. A tile whose label
cannot be read keeps the id the thumbnail rule gives it (today's behaviour). Two tiles showing
the same name are one participant: the tile that held the name first is analysed, the other
is not, and a warning is counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engagement.vision.name_labels import LabelOptions, TesseractReader, label_strip
from engagement.vision.tile_ids import CUT_THRESHOLD, TileIdTracker, signature_distance, tile_signature

Rect = tuple[int, int, int, int]
# Turns a label's text into its keyed pseudonym, or None (nothing name-like was read).
NameKey = Callable[[str], "str | None"]


@dataclass
class NameIdentities:
    """Decides each tile's track id from its name label (see the module docstring)."""

    name_key: NameKey
    reader: object = None  # anything with read(strips) -> texts; Tesseract by default
    # Seconds after which a tile whose content did not cut is read again if its label strip
    # changed (a participant renamed in the meeting). Every tile every 5 s took 15 % of a 5x5
    # 1080p gallery's analysis in a 20 s run (benchmarks/name_labels.py --reread 5); renames
    # are rare, and every reorder, camera switch or new layout is read at once anyway.
    reread_s: float = 15.0
    options: LabelOptions = field(default_factory=LabelOptions)
    ids: dict[str, int] = field(default_factory=dict)  # name key -> track id
    key_of_track: dict[int, str] = field(default_factory=dict)
    shared_name_frames: int = 0  # frames in which two tiles showed one name
    reads: int = 0  # label strips read
    _tile_keys: list[str | None] = field(default_factory=list)
    _read_at: list[tuple[float, np.ndarray | None, np.ndarray | None]] = field(default_factory=list)
    _rects: list[Rect] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.reader is None:
            self.reader = TesseractReader(self.options)

    def decide(self, tracker: TileIdTracker, image: np.ndarray, rects: Sequence[Rect],
               signatures: Sequence[np.ndarray], t_ms: float) -> set[int]:  # fmt: skip
        """Give every tile whose name is known the id of that name (in `tracker`). Returns the
        tiles not to analyse this frame: a second tile showing a name already shown."""
        if list(rects) != self._rects:  # a new layout: every label is read again
            self._rects = list(rects)
            self._tile_keys = [None] * len(rects)
            self._read_at = [(-1e18, None, None)] * len(rects)
        due = [i for i, sig in enumerate(signatures) if self._due(i, sig, image, t_ms)]
        if due:
            self._read(image, due, signatures, t_ms)
        skip: set[int] = set()
        shown: dict[str, int] = {}
        for index, key in enumerate(self._tile_keys):
            if key is None:
                continue
            if key in shown:
                skip.add(index)
                self.shared_name_frames += 1
                continue
            shown[key] = index
            track_id = self.ids.get(key)
            if track_id is None:
                track_id = self.ids[key] = tracker.new_id(index)
            tracker.assign(index, track_id)
            self.key_of_track[track_id] = key
        return skip

    def _due(self, index: int, signature: np.ndarray, image: np.ndarray, t_ms: float) -> bool:
        at, sig, strip = self._read_at[index]
        if sig is None or signature_distance(sig, signature) > CUT_THRESHOLD:
            return True  # never read, or the tile's content cut (a reorder, a camera switched)
        # Due again only if the label strip itself changed: a label on Zoom's box stays put, and
        # reading it again every few seconds cost more than all the reorders (benchmark).
        return t_ms - at >= self.reread_s * 1000.0 and signature_distance(strip, self._strip_sig(image, index)) > CUT_THRESHOLD

    def _strip_sig(self, image: np.ndarray, index: int) -> np.ndarray:
        x0, y0, x1, y1 = self._rects[index]
        return tile_signature(label_strip(image[y0:y1, x0:x1], self.options))

    def _read(self, image: np.ndarray, due: list[int], signatures: Sequence[np.ndarray], t_ms: float) -> None:
        strips = []
        for i in due:
            x0, y0, x1, y1 = self._rects[i]
            strips.append(label_strip(image[y0:y1, x0:x1], self.options))
        texts = self.reader.read(strips)  # type: ignore[attr-defined]
        self.reads += len(strips)
        for i, text in zip(due, texts):
            key = self.name_key(text) if text else None
            # The clear text is not kept: only its keyed pseudonym leaves this loop.
            self._tile_keys[i] = key
            self._read_at[i] = (t_ms, signatures[i], self._strip_sig(image, i))
        del texts, strips

    def key(self, track_id: int) -> str | None:
        """The name pseudonym of a track (None: its label was never read)."""
        return self.key_of_track.get(track_id)
