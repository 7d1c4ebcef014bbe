"""A PNG's chunk list after its pixel data, read from the chunk headers alone (8 bytes each, the
data skipped), so that an image's size and orientation come from its header without decoding it.

PIL parses a PNG's chunks only up to the first IDAT when it opens the file; EXIF (eXIf) and text
chunks (XMP, ImageMagick's 'Raw profile type exif') may also follow the pixels, so PIL's getexif()
decodes the whole image to reach them (0.18 s for a 2040x1356 photo). Walking the chunk headers
instead finds out, for the cost of one small read per chunk, whether such a chunk follows the
pixels — and whether the file is cut short, which a whole decode would report later.
"""
import os
import struct
from typing import BinaryIO

# Chunks that may carry an orientation (eXIf; EXIF or XMP in text chunks).
METADATA_CHUNKS = frozenset((b'eXIf', b'tEXt', b'zTXt', b'iTXt'))


class TruncatedPNG(OSError):
    """A chunk runs past the end of the file, or the file ends before IEND."""


def metadata_after_pixels(fp: BinaryIO, idat_data: int) -> bool:
    """Whether a chunk of METADATA_CHUNKS follows the first IDAT chunk, whose data starts at byte
    `idat_data` of the open PNG file `fp`; TruncatedPNG when the chunk list runs past the file's
    end. Leaves fp's position where it was."""
    where = fp.tell()
    try:
        end = os.fstat(fp.fileno()).st_size
        pos = idat_data - 8  # the IDAT chunk's header: length (4 bytes, big-endian), type (4)
        while True:
            fp.seek(pos)
            head = fp.read(8)
            if len(head) < 8:
                raise TruncatedPNG('image file is truncated: it ends before its IEND chunk')
            length, kind = struct.unpack('>I4s', head)
            pos += 12 + length  # header, data, CRC
            if pos > end:
                raise TruncatedPNG(f'image file is truncated: its {kind.decode("latin-1")!r} chunk of '
                                   f'{length} bytes runs past the end')
            if kind in METADATA_CHUNKS:
                return True
            if kind == b'IEND':
                return False
    finally:
        fp.seek(where)
