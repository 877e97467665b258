"""Tile-anchored track ids: an id belongs to a participant's video tile (their feed), found
again by a tiny thumbnail of the tile when the meeting app moves tiles or re-cuts its grid.
Why thumbnails and what "stay with the tile" means: engagement/vision/gallery.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

# Thumbnail of a whole tile used to tell feeds apart (8x6 colour pixels: cheap, blur-tolerant).
SIGNATURE_SIZE = (8, 6)
# Mean absolute thumbnail change (0-1) above which a tile's content is said to have cut. Frames
# of one talking-head feed measured <= 0.043 apart on the real clips; different feeds 0.04-0.35: feeds that look alike at
# this scale (same room, same person) are not told apart, and then the id stays with the position.
CUT_THRESHOLD = 0.06
# A cut tile's new content must be this close to another tile's previous content to count as
# that feed having moved here.
MATCH_THRESHOLD = 0.05
# A re-cut layout shows the same feeds rescaled: a tile's new thumbnail is within this of its
# old one (resizing moves an 8x6 thumbnail far less than a cut between feeds does).
RELAYOUT_THRESHOLD = 0.08
# Added to the thumbnail distance per tile a feed moves in reading order (scaled to the grid):
# breaks ties between look-alike tiles in favour of the order the app keeps.
ORDER_PENALTY = 0.02



def tile_signature(tile: np.ndarray) -> np.ndarray:
    """A tiny colour thumbnail (0-1 floats) of a whole tile: what tells one feed from another."""
    return cv2.resize(tile, SIGNATURE_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b)))


@dataclass
class _Slot:
    track_id: int | None = None
    signature: np.ndarray | None = None


@dataclass
class TileIdTracker:
    """Tile-anchored track ids (see the module docstring for what "stay with the tile" means)."""

    n_tiles: int
    cut_threshold: float = CUT_THRESHOLD
    match_threshold: float = MATCH_THRESHOLD
    _slots: list[_Slot] = field(default_factory=list)
    _next_id: int = 1
    home: dict[int, int] = field(default_factory=dict)  # track id -> tile it was first seen in
    moves: int = 0  # how many times an id followed its feed to another tile

    def __post_init__(self) -> None:
        self._slots = [_Slot() for _ in range(self.n_tiles)]

    def update(
        self, signatures: Sequence[np.ndarray], has_face: Sequence[bool], occupied: Sequence[bool] | None = None
    ) -> list[int | None]:
        """The track id of each tile's face this frame (None: no face in that tile). A tile that
        is `occupied` (a detected layout's tile: a participant, video or not) gets its id at once,
        so a participant whose camera is off is that id, absent, from the start."""
        previous = [s.signature for s in self._slots]
        cut = [
            prev is not None and signature_distance(prev, sig) > self.cut_threshold
            for prev, sig in zip(previous, signatures)
        ]
        ids = [s.track_id for s in self._slots]
        changed = [i for i, c in enumerate(cut) if c]
        if len(changed) >= 2:
            # Content that appeared in a cut tile is matched to content that left another cut
            # tile; greedy on distance is exact enough for the few tiles one reorder moves.
            pairs = sorted(
                (signature_distance(signatures[j], previous[i]), i, j)  # type: ignore[arg-type]
                for j in changed
                for i in changed
                if i != j
            )
            taken_src: set[int] = set()
            taken_dst: set[int] = set()
            moved: dict[int, int | None] = {}
            for dist, src, dst in pairs:
                if dist > self.match_threshold:
                    break
                if src in taken_src or dst in taken_dst:
                    continue
                # Only a move if the new content matches the other tile better than its own past.
                if dist >= signature_distance(signatures[dst], previous[dst]):  # type: ignore[arg-type]
                    continue
                taken_src.add(src)
                taken_dst.add(dst)
                moved[dst] = ids[src]
            for dst, track_id in moved.items():
                self._slots[dst].track_id = track_id
                self.moves += track_id is not None
            # A feed that moved away and was not replaced by another feed leaves an empty slot.
            for src in taken_src - taken_dst:
                self._slots[src].track_id = None
        out: list[int | None] = []
        occupied = occupied or [False] * len(has_face)
        for i, (sig, face) in enumerate(zip(signatures, has_face)):
            slot = self._slots[i]
            slot.signature = sig
            if (face or occupied[i]) and slot.track_id is None:
                slot.track_id = self._next_id
                self.home[self._next_id] = i
                self._next_id += 1
            out.append(slot.track_id if face else None)
        return out


    def new_id(self, index: int) -> int:
        """A fresh id, first seen in tile `index` (a name label seen for the first time)."""
        track_id = self._next_id
        self._next_id += 1
        self.home[track_id] = index
        return track_id

    def assign(self, index: int, track_id: int) -> None:
        """Tile `index` is `track_id`, decided from its name label: no other tile keeps that id
        (one a thumbnail match moved there gets a fresh one), so one id never names two tiles."""
        for i, slot in enumerate(self._slots):
            if i != index and slot.track_id == track_id:
                slot.track_id = None
        self._slots[index].track_id = track_id

    def cuts(self, signatures: Sequence[np.ndarray]) -> int:
        """How many tiles' content cut since the last update (without updating)."""
        return sum(
            s.signature is not None and signature_distance(s.signature, sig) > self.cut_threshold
            for s, sig in zip(self._slots, signatures)
        )

    def ids(self) -> list[int | None]:
        """The id each tile holds now (also tiles whose face is not found this frame)."""
        return [s.track_id for s in self._slots]

    def relayout(self, signatures: Sequence[np.ndarray], centres: Sequence[tuple[float, float]] | None = None,
                 old_centres: Sequence[tuple[float, float]] | None = None, reach: float = 0.0) -> list[int | None]:
        """The meeting app re-cut its tiles (someone joined or left, the view changed): each new
        tile takes the id of the old tile whose last content it shows. Cost is the thumbnail
        distance plus a small penalty for moving in reading order, so feeds that look alike (two
        camera-off tiles: a name on grey) keep their order, as Zoom keeps it when someone joins.
        A tile left unmatched (its content cut at the same moment: a camera turned on) takes the
        id of an unmatched old tile whose centre was within `reach` pixels of its own.
        Returns the id each new tile inherited (None: a new participant or an empty tile)."""
        old = [(i, s) for i, s in enumerate(self._slots) if s.track_id is not None and s.signature is not None]
        span = max(len(self._slots), len(signatures), 1)
        pairs = sorted(
            (signature_distance(sig, slot.signature) + ORDER_PENALTY * abs(i - j) / span, i, j)
            for j, sig in enumerate(signatures)
            for i, slot in old
        )
        inherited: list[int | None] = [None] * len(signatures)
        taken: set[int] = set()
        for cost, i, j in pairs:
            if cost > RELAYOUT_THRESHOLD:
                break
            if i in taken or inherited[j] is not None:
                continue
            taken.add(i)
            inherited[j] = self._slots[i].track_id
        if centres is not None and old_centres is not None:
            for j, (x, y) in enumerate(centres):
                near = [
                    (abs(x - old_centres[i][0]) + abs(y - old_centres[i][1]), i)
                    for i, _ in old
                    if i not in taken and i < len(old_centres)
                ]
                near = [(d, i) for d, i in near if d <= reach]
                if inherited[j] is None and near:
                    i = min(near)[1]
                    taken.add(i)
                    inherited[j] = self._slots[i].track_id
        self._slots = [_Slot(track_id, sig) for track_id, sig in zip(inherited, signatures)]
        self.n_tiles = len(signatures)
        return inherited
