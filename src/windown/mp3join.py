"""Export, in two halves at once: join two LAME encodes of one track into one MP3 at a frame boundary.

One ffmpeg encodes on one core, so the part of a track left to encode once its length is known (the
sleep tail, in a cold build) can be split: the first encoder goes on to the join and a little past it,
a second encodes from a little before the join to the end. Joined at an MPEG frame boundary, the result
decodes to exactly what one encoder would have made of the whole track (tested sample for sample):

- Every audio frame of the second encode is one the first would have made: its start is a whole number
  of frames (1,152 samples) into the track and its first frames before the join (PREROLL_FRAMES) are
  thrown away, so its filter bank and psychoacoustic model have already seen what comes before the
  join. The first encode ran a little past the join (POSTROLL_FRAMES), so its last kept frames saw what
  comes after. The frames either side of the join then overlap and add as any two neighbours do.
- The second encode is made without LAME's bit reservoir (`-reservoir 0`), so none of its frames reads
  bits from frames that were thrown away. With VBR the reservoir only changes how bits are packed, not
  what is decoded, so the join decodes bit for bit as one encode would.
- ffmpeg remuxes the joined frames, writing the Xing/LAME header players seek and trim by (frame count,
  byte count, seek table, music CRC); the encoder delay and padding it cannot know are written here, so
  a gapless player trims the result to exactly the track's frames.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

SAMPLES_PER_FRAME = 1152  # MPEG-1 Layer III
PREROLL_FRAMES = 8  # the second encoder's frames before the join, thrown away (its filter bank's memory)
POSTROLL_FRAMES = 8  # the first encoder's frames after the join, thrown away (its look-ahead)
BITRATES_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
SAMPLE_RATES = (44100, 48000, 32000)
DELAY_PADDING_AT = 21  # within the LAME tag: 12 bits of encoder delay, 12 of padding (in samples)
LAME_TAG_CRC_AT = 34  # within the LAME tag: CRC-16 of the frame up to here (its last two bytes)


class JoinError(RuntimeError):
    """Something in the two encodes is not what the join needs (a bug, never a user's mistake)."""


def frame_length(data: bytes, at: int = 0) -> int:
    """Bytes in the MPEG-1 Layer III frame whose header starts at `at`."""
    if at + 4 > len(data):
        raise JoinError(f"a cut frame header at byte {at}")
    header = struct.unpack(">I", data[at:at + 4])[0]
    if header >> 21 != 0x7FF or (header >> 19) & 3 != 3 or (header >> 17) & 3 != 1:
        raise JoinError(f"no MPEG-1 Layer III frame at byte {at}")
    bitrate, rate = (header >> 12) & 15, (header >> 10) & 3
    if not 0 < bitrate < len(BITRATES_KBPS) or rate == 3:
        raise JoinError(f"a frame with no bitrate or sample rate at byte {at}")
    return 144000 * BITRATES_KBPS[bitrate] // SAMPLE_RATES[rate] + ((header >> 9) & 1)


def frames(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each frame in bare MP3 data (no ID3 tag)."""
    out, at = [], 0
    while at < len(data):
        length = frame_length(data, at)
        out.append((at, length))
        at += length
    if at != len(data):
        raise JoinError("the last frame is cut short")
    return out


def info_tag_at(frame: bytes) -> int | None:
    """Where the Xing/Info tag starts in a frame, or None when the frame is audio."""
    mono = (frame[3] >> 6) == 3
    at = 4 + (17 if mono else 32)  # after the header and the side information
    return at if frame[at:at + 4] in (b"Xing", b"Info") else None


def lame_tag_at(frame: bytes) -> int:
    """Where the LAME extension (encoder string, delay and padding, CRCs) starts in a Xing frame."""
    at = info_tag_at(frame)
    if at is None:
        raise JoinError("the encode has no Xing/Info frame")
    flags = struct.unpack(">I", frame[at + 4:at + 8])[0]
    at += 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
    return at


def delay_padding(frame: bytes) -> tuple[int, int]:
    """(encoder delay, padding) in samples, from a Xing frame's LAME tag."""
    at = lame_tag_at(frame) + DELAY_PADDING_AT
    value = int.from_bytes(frame[at:at + 3], "big")
    return value >> 12, value & 0xFFF


def join(first: Path, second: Path, join_frame: int, second_start_frame: int, out: Path, ffmpeg: str) -> None:
    """Write `out`: the audio frames of `first` before track frame `join_frame`, then those of `second`
    (which began at track frame `second_start_frame`) from it on; both frame numbers are whole MP3 frames."""
    if join_frame % SAMPLES_PER_FRAME or second_start_frame % SAMPLES_PER_FRAME:
        raise JoinError("the join and the second encode's start must fall on frame boundaries")
    a, b = first.read_bytes(), second.read_bytes()
    a_frames, b_frames = frames(a), frames(b)
    delay, _ = delay_padding(a[:a_frames[0][1]])  # each encode's first frame is its Xing/LAME frame
    _, padding = delay_padding(b[:b_frames[0][1]])
    keep_a = join_frame // SAMPLES_PER_FRAME
    skip_b = (join_frame - second_start_frame) // SAMPLES_PER_FRAME
    if len(a_frames) - 1 < keep_a or len(b_frames) - 1 <= skip_b:
        raise JoinError("an encode is shorter than the join needs")
    raw = out.with_name(out.name + ".frames")
    try:
        with open(raw, "wb") as joined:
            for offset, length in a_frames[1:1 + keep_a]:
                joined.write(a[offset:offset + length])
            for offset, length in b_frames[1 + skip_b:]:
                if main_data_begin(b, offset):
                    raise JoinError("the second encode used the bit reservoir")
                joined.write(b[offset:offset + length])
        remux = subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "mp3", "-i", str(raw),
                                "-c:a", "copy", "-id3v2_version", "0", "-write_xing", "1", "-f", "mp3", str(out)],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if remux.returncode != 0:
            lines = remux.stderr.strip().splitlines()
            raise JoinError(lines[-1] if lines else f"ffmpeg exit status {remux.returncode}")
    finally:
        raw.unlink(missing_ok=True)
    set_delay_padding(out, delay, padding)


def main_data_begin(data: bytes, at: int) -> int:
    """How many bytes before the frame at `at` its audio data starts (the bit reservoir's borrowing)."""
    side_info = at + 4 + (0 if data[at + 1] & 1 else 2)  # a 16-bit CRC follows the header when protected
    return (data[side_info] << 1) | (data[side_info + 1] >> 7)


def set_delay_padding(path: Path, delay: int, padding: int) -> None:
    """Write the encoder delay and padding into the LAME tag of bare MP3 data, and the tag's CRC after it."""
    with open(path, "r+b") as f:
        head = f.read(4)
        f.seek(0)
        frame = bytearray(f.read(frame_length(head)))
        at = lame_tag_at(frame)
        frame[at + DELAY_PADDING_AT:at + DELAY_PADDING_AT + 3] = ((delay << 12) | padding).to_bytes(3, "big")
        crc_at = at + LAME_TAG_CRC_AT
        frame[crc_at:crc_at + 2] = crc16(bytes(frame[:crc_at])).to_bytes(2, "big")
        f.seek(0)
        f.write(frame)


def crc16(data: bytes) -> int:
    """CRC-16/ARC (the LAME tag's own CRC): reflected polynomial 0xA001, starting from 0."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc
