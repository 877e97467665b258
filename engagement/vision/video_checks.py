"""Is a file a whole video? Checks on a file's bytes that FFmpeg does not make.

FFmpeg decodes a still image under a video's name as a one-frame "video", and an MPEG program or
transport stream declares no length, so one that was cut short decodes without complaint.
"""

from __future__ import annotations

from pathlib import Path

# Still images under a video's name: FFmpeg would decode them as a one-frame "video".
_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def still_image_kind(head: bytes) -> str | None:
    """The image format a file's first bytes announce, or None (not a known still image)."""
    for magic, kind in _IMAGE_SIGNATURES:
        if head.startswith(magic):
            # "BM" is short: also check the size field of a real bitmap header (bytes 2-5).
            return kind if kind != "BMP" or len(head) >= 14 else None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return "HEIF/AVIF"
    return None


def mpeg_cut_warning(path: Path) -> str | None:
    """Whether an MPEG program or transport stream ends inside a packet: the file was cut short.

    Such containers declare no length (FFmpeg estimates one from the file size, so it always
    agrees with what decodes), but their packets carry lengths: a program stream's last packet
    claims bytes the file no longer holds, a transport stream stops between its fixed 188-byte
    packets. Not detectable: a cut exactly at a packet boundary.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(4)
        if head[:1] == b"\x47" and size >= 376:
            fh.seek(188)
            if fh.read(1) == b"\x47" and size % 188:
                return f"{path.name} ends inside a transport-stream packet: it was probably cut short; its end is missing"
            return None
        if head != b"\x00\x00\x01\xba":
            return None
        start = max(0, size - (1 << 20))
        fh.seek(start)
        tail = fh.read()
    if _ps_ends_inside_a_packet(tail):
        return f"{path.name} ends inside an MPEG packet: it was probably cut short; its end is missing"
    return None


def _ps_ends_inside_a_packet(data: bytes) -> bool:
    """Whether the packets of an MPEG program stream (its last 1 MiB) run past the data's end."""
    at = 0
    while (at := data.find(b"\x00\x00\x01", at)) >= 0:
        # Follow packet lengths from this candidate; a false start code soon lands off a packet.
        end, packets = at, 0
        while end < len(data):
            length = _ps_packet_length(data[end : end + 14])
            if not length:
                break
            end, packets = end + length, packets + 1
        if packets >= 3 and end >= len(data):
            return end > len(data)
        at += 1
    return False


def _ps_packet_length(head: bytes) -> int | None:
    """Length of the MPEG-PS packet that starts with `head` (its first 14 bytes; fewer at the end
    of the data, where a header cut short counts as one byte too long); None: not a packet."""
    cut = len(head) + 1
    if not head.startswith(b"\x00\x00\x01"):
        return cut if b"\x00\x00\x01".startswith(head) else None
    if len(head) < 4:
        return cut
    code = head[3]
    if code == 0xB9:  # program end code
        return 4
    if code == 0xBA:  # pack header: MPEG-2 (14 bytes + stuffing) or MPEG-1 (12 bytes)
        if len(head) < 5:
            return cut
        if head[4] >> 6 != 1:
            return 12
        return 14 + (head[13] & 7) if len(head) == 14 else cut
    if code >= 0xBB:  # system header, PES packets: 6 bytes + their stated length
        return 6 + int.from_bytes(head[4:6], "big") if len(head) >= 6 else cut
    return None
