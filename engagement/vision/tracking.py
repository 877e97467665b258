"""Stable anonymous track ids for faces across frames.

Ids are small integers in order of first appearance (shown as T1, T2, ...). A face that is lost
for less than `lost_ms` (turned away, occluded, a missed detection) gets its old id back when it
reappears near where it was; after that it is treated as a new face. Ids say nothing about who
a person is: tying a track to a participant is the consent gate's job.
"""

from __future__ import annotations

from dataclasses import dataclass

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centre_distance(a: Box, b: Box) -> float:
    """Distance between box centres in units of the mean box width (scale-free)."""
    ax, ay = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
    bx, by = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    width = ((a[2] - a[0]) + (b[2] - b[0])) / 2 or 1.0
    return (((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5) / width


@dataclass
class _Track:
    id: int
    box: Box
    last_ms: float


class FaceTracker:
    """Greedy association of detections to tracks by overlap, then by centre distance."""

    def __init__(self, lost_ms: float = 3000.0, min_iou: float = 0.2, max_centre_distance: float = 1.0):
        self.lost_ms = lost_ms
        self.min_iou = min_iou
        self.max_centre_distance = max_centre_distance
        self._tracks: list[_Track] = []
        self._next_id = 1

    def update(self, boxes: list[Box], t_ms: float) -> list[int]:
        """Track ids for `boxes`, in the same order. Forgets tracks unseen for `lost_ms`."""
        self._tracks = [t for t in self._tracks if t_ms - t.last_ms <= self.lost_ms]
        pairs = []
        for ti, track in enumerate(self._tracks):
            for bi, box in enumerate(boxes):
                overlap = iou(track.box, box)
                distance = centre_distance(track.box, box)
                if overlap >= self.min_iou or distance <= self.max_centre_distance:
                    # Overlap first; centre distance breaks ties and rescues fast movers.
                    pairs.append((-overlap, distance, ti, bi))
        pairs.sort()
        ids: list[int | None] = [None] * len(boxes)
        used_tracks: set[int] = set()
        for _, _, ti, bi in pairs:
            if ti in used_tracks or ids[bi] is not None:
                continue
            used_tracks.add(ti)
            ids[bi] = self._tracks[ti].id
            self._tracks[ti].box = boxes[bi]
            self._tracks[ti].last_ms = t_ms
        for bi, box in enumerate(boxes):
            if ids[bi] is None:
                track = _Track(self._next_id, box, t_ms)
                self._next_id += 1
                self._tracks.append(track)
                ids[bi] = track.id
        return [int(i) for i in ids]  # type: ignore[arg-type]
