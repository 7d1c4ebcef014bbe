"""Reading images from a folder, and keeping them decoded: not at all, in memory, or on disk.

Images are held as 8-bit arrays (H, W, 3): a quarter of the memory of float32 tensors. They are
read by the same function as demo.py's inputs (utils/images.py), so both see the same pixels.
"""
import hashlib
import json
import os
from typing import Optional

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from utils.errors import UserError
from utils.files import atomic_write, clean_stale_temps
from utils.images import IMAGE_EXTENSIONS, image_size, is_image_name, physical_memory, read_rgb

CACHE_MODES = ('none', 'bin', 'in_memory')
# {file name: {'stamp': [size, mtime_ns, ctime_ns, inode], 'sha256': hex, 'reader': READER}} of the
# sources of the .npy files.
BIN_INDEX = '_index.json'
# Bumped when the reader's pixels change, so caches decoded by an older reader are rebuilt
# (2: 16-bit images scaled instead of clipped, EXIF orientation applied; 3: content checked;
# 4: 16-bit colour read whole, 32-bit integer and float images by range).
READER = 4


def read_image(path: str) -> np.ndarray:
    """The image at `path` as uint8 (H, W, 3): utils.images' reader, the one demo.py uses (16-bit
    scaled by 1/257, palette and CMYK to RGB, grayscale repeated, EXIF orientation applied), with
    any alpha dropped (docs/design.md §3)."""
    return read_rgb(path)


def to_tensor(arr: np.ndarray) -> Tensor:
    """uint8 (H, W, 3) -> float (3, H, W) in [0, 1] (value / 255)."""
    if not arr.flags.writeable:  # torch refuses to share read-only memory; copy instead
        arr = arr.copy()
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float().div_(255)


def to_uint8(img: Tensor) -> np.ndarray:
    """float (3, H, W) in [0, 1] -> uint8 (H, W, 3), rounding to the nearest 8-bit value."""
    return img.detach().cpu().mul(255).round_().clamp_(0, 255).byte().permute(1, 2, 0).numpy()


def list_images(root: str) -> list[str]:
    """Sorted names of the image files directly in `root` (hidden files skipped)."""
    if not os.path.isdir(root):
        raise UserError(f'image folder not found: {root}')
    names = sorted(n for n in os.listdir(root)
                   if is_image_name(n)
                   and os.path.isfile(os.path.join(root, n)))
    if not names:
        raise UserError(f'no images in folder {root} (expected files ending in '
                        f'{", ".join(IMAGE_EXTENSIONS)})')
    return names


def file_sha256(path: str) -> str:
    """The hex sha256 of a file's bytes (a UserError naming it when it cannot be read)."""
    h = hashlib.sha256()
    try:
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                h.update(block)
    except OSError as e:
        raise UserError(f'cannot read image {path} ({e.strerror})') from None
    return h.hexdigest()


def bin_root(root: str) -> str:
    """The sibling folder `_bin_<folder name>` where cache 'bin' keeps decoded arrays."""
    root = os.path.normpath(root)
    return os.path.join(os.path.dirname(root), '_bin_' + os.path.basename(root))


def load_bin(path: str) -> np.ndarray:
    """A cache file of cache 'bin': uint8 (H, W, 3), read without unpickling; anything else is a
    UserError naming the file."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f'corrupt cache file {path} ({e}); delete it to rebuild') from None
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape:
        raise UserError(f'corrupt cache file {path}: holds a {arr.dtype} array of shape {arr.shape}, '
                        'expected uint8 (H, W, 3); delete it to rebuild')
    return arr


def check_fits_in_memory(root: str, paths: list[str], memory: Optional[int] = None) -> None:
    """Refuse (UserError) images whose decoded 8-bit pixels, summed from their headers, exceed
    `memory` (default: this machine's RAM): `cache: in_memory` would grow until the machine kills it."""
    memory = physical_memory() if memory is None else memory
    if memory is None:
        return
    need = 0
    for path in paths:
        try:
            h, w = image_size(path)
        except UserError:  # an unreadable file is reported by the decoding that follows, naming it
            continue
        need += h * w * 3
    if need > memory:
        raise UserError(f'cache in_memory for {root}: its {len(paths):,} images decode to {need / 2 ** 30:,.1f} GiB, '
                        f"over the {memory / 2 ** 30:.0f} GiB of this machine; use cache 'bin' or 'none'")


class ImageStore:
    """The images `names` of folder `root`, decoded on every access ('none'), once into memory
    ('in_memory', uint8), or once into `.npy` files next to the folder ('bin')."""

    def __init__(self, root: str, names: list[str], cache: str = 'none'):
        if cache not in CACHE_MODES:
            raise UserError(f'unknown cache {cache!r} for {root}; expected one of {", ".join(CACHE_MODES)}')
        self.root, self.names, self.cache = root, list(names), cache
        self.paths = [os.path.join(root, n) for n in self.names]
        self.arrays: Optional[list[np.ndarray]] = None
        if cache == 'in_memory':
            check_fits_in_memory(root, self.paths)
            self.arrays = [read_image(p) for p in
                           tqdm(self.paths, desc=f'loading {root}', leave=False, disable=len(self.paths) < 50)]
        elif cache == 'bin':
            self.bin_paths = self._build_bin()

    def __len__(self) -> int:
        return len(self.names)

    def get(self, i: int) -> np.ndarray:
        """Image i as uint8 (H, W, 3)."""
        if self.arrays is not None:
            return self.arrays[i]
        if self.cache == 'bin':
            return load_bin(self.bin_paths[i])
        return read_image(self.paths[i])

    def size(self, i: int) -> tuple[int, int]:
        """(H, W) of image i, without decoding it (the cached array's shape, or the file's header)."""
        if self.arrays is not None:
            return self.arrays[i].shape[:2]
        return image_size(self.paths[i])

    def nbytes(self) -> int:
        """Bytes held in memory by the decoded images (0 unless cache is 'in_memory')."""
        return sum(a.nbytes for a in self.arrays) if self.arrays is not None else 0

    def _build_bin(self) -> list[str]:
        """Write a .npy per image whose source is new or changed; return their paths. A source is
        unchanged when its size, mtime, ctime and inode are those recorded; otherwise its content's
        sha256 decides (a file replaced by `cp -p`, `rsync -a` or `tar` keeps its size and mtime,
        but gets a new ctime, which no tool can set back: it is hashed, and decoded again when its
        content differs). A copied dataset (new ctimes, same content) is hashed, not decoded."""
        out_root = bin_root(self.root)
        try:
            os.makedirs(out_root, exist_ok=True)
        except OSError as e:
            raise UserError(f'cannot create cache folder {out_root}: {e.strerror}') from None
        clean_stale_temps(out_root)  # of builds that were killed
        index_path = os.path.join(out_root, BIN_INDEX)
        index = {}
        if os.path.isfile(index_path):
            try:
                with open(index_path) as f:
                    index = json.load(f)
            except (OSError, ValueError):
                index = {}  # an unreadable index only costs a rebuild
        bin_paths, changed = [], False
        try:
            for name, path in zip(self.names, self.paths):
                npy = os.path.join(out_root, name + '.npy')
                entry = index.get(name)
                if not (isinstance(entry, dict) and entry.get('reader') == READER and os.path.isfile(npy)):
                    entry = None
                try:
                    st = os.stat(path)
                except OSError as e:
                    raise UserError(f'cannot read image {path} ({e.strerror})') from None
                stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
                if entry is None or entry.get('stamp') != stamp:
                    digest = file_sha256(path)
                    if entry is None or entry.get('sha256') != digest:
                        arr = read_image(path)
                        atomic_write(npy, lambda f: np.save(f, arr, allow_pickle=False))
                    index[name] = {'stamp': stamp, 'sha256': digest, 'reader': READER}
                    changed = True
                bin_paths.append(npy)
        finally:
            if changed:
                atomic_write(index_path, lambda f: f.write(json.dumps(index).encode()))
        return bin_paths
