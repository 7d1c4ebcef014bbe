"""`image-folder` and `paired-image-folders`: images from disk as float (3, H, W) in [0, 1]."""
import json
import os
import re
from typing import Optional

from torch import Tensor
from torch.utils.data import Dataset

from utils.errors import UserError

from .image_store import ImageStore, bin_root, list_images, to_tensor
from .registry import register

_SCALE_SUFFIX = re.compile(r'x\d+$', re.IGNORECASE)


def spec_inputs(spec, caches: bool = True) -> dict[str, str]:
    """What a dataset spec (any nesting: a test_dataset block, a wrapper around a dataset) reads,
    labelled for messages: every folder of images (`root_path*`), split file, and the `_bin_`
    folder of a `cache: bin` dataset (unless not `caches`). Outputs are checked against these (utils.files.refuse_inputs)."""
    found = {}
    if isinstance(spec, dict):
        cache = spec.get('cache')
        for k, v in spec.items():
            if isinstance(v, str) and (k.startswith('root_path') or k == 'split_file'):
                found[f'data folder {v}' if k != 'split_file' else f'split file {v}'] = v
                if caches and cache == 'bin' and k.startswith('root_path'):
                    found[f'cache folder of {v}'] = bin_root(v)
            else:
                found.update(spec_inputs(v, caches))
    elif isinstance(spec, list):
        for v in spec:
            found.update(spec_inputs(v, caches))
    return found


def name_key(name: str, strip_scale: bool) -> str:
    """File name -> matching key: the stem, with a trailing `x<digits>` removed if strip_scale
    (`babyx2.png` -> `baby`, the EDSR benchmark pack's LR naming)."""
    stem = os.path.splitext(name)[0]
    return (_SCALE_SUFFIX.sub('', stem) or stem) if strip_scale else stem


def pair_names(names_1: list[str], names_2: list[str], root_1: str, root_2: str) -> list[tuple[str, str]]:
    """Match the files of two folders by stem (ignoring an `x<scale>` suffix on either side);
    pairs in the order of names_1. Any file without a partner is a UserError."""
    for strip_1, strip_2 in ((False, False), (True, False), (False, True), (True, True)):
        keys_1 = [name_key(n, strip_1) for n in names_1]
        keys_2 = [name_key(n, strip_2) for n in names_2]
        if len(set(keys_1)) == len(keys_1) and sorted(keys_1) == sorted(keys_2):
            by_key = dict(zip(keys_2, names_2))
            return [(n, by_key[k]) for n, k in zip(names_1, keys_1)]
    keys_1 = {name_key(n, True): n for n in names_1}
    keys_2 = {name_key(n, True): n for n in names_2}
    lonely = sorted([(n, root_1, root_2) for k, n in keys_1.items() if k not in keys_2]
                    + [(n, root_2, root_1) for k, n in keys_2.items() if k not in keys_1])
    detail = (f'first unmatched: {lonely[0][0]} in {lonely[0][1]} has no partner in {lonely[0][2]}'
              if lonely else 'names collide after removing x<scale> suffixes')
    raise UserError(f'paired folders do not match: {root_1} has {len(names_1)} images, '
                    f'{root_2} has {len(names_2)}; {detail}')


def load_split(split_file: str, split_key: Optional[str]) -> list[str]:
    """The list of file names under `split_key` in the JSON `split_file`."""
    try:
        with open(split_file) as f:
            split = json.load(f)
    except OSError as e:
        raise UserError(f'cannot read split file {split_file}: {e.strerror}') from None
    except ValueError as e:
        raise UserError(f'split file {split_file} is not valid JSON: {e}') from None
    if not isinstance(split, dict) or split_key not in split:
        known = ', '.join(map(str, split)) if isinstance(split, dict) else 'none (not a JSON object)'
        raise UserError(f'split file {split_file} has no key {split_key!r}; keys: {known}')
    return list(split[split_key])


# Passes over the images per epoch no run needs (the paper's: 20): larger ones are mistakes whose
# epoch would never end (and 1e30 overflows the dataset's length).
MAX_REPEAT = 10 ** 6


def check_options(repeat: int, first_k: Optional[int], where: str) -> None:
    """Refuse a repeat or first_k that is not a positive integer, or a repeat over MAX_REPEAT."""
    for key, value in (('repeat', repeat), ('first_k', first_k)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise UserError(f'{key} of {where} must be a positive integer, got {value!r}')
    if repeat > MAX_REPEAT:
        raise UserError(f'repeat of {where} must be at most {MAX_REPEAT:,}, got {repeat:,}')


@register('image-folder')
class ImageFolder(Dataset):
    """Images of `root_path` sorted by name (or the names in `split_file[split_key]`), the first
    `first_k`, each seen `repeat` times per epoch. Item: float (3, H, W) in [0, 1]."""

    def __init__(self, root_path: str, split_file: Optional[str] = None, split_key: Optional[str] = None,
                 first_k: Optional[int] = None, repeat: int = 1, cache: str = 'none'):
        check_options(repeat, first_k, root_path)
        names = list_images(root_path)
        if split_file is not None:
            listed = load_split(split_file, split_key)
            missing = [n for n in listed if n not in set(names)]
            if missing:
                raise UserError(f'{missing[0]} (listed in {split_file}) is not an image in {root_path}')
            names = listed
        if first_k is not None:
            names = names[:first_k]
        self.store = ImageStore(root_path, names, cache)
        self.repeat = repeat

    def __len__(self) -> int:
        return len(self.store) * self.repeat

    def __getitem__(self, idx: int) -> Tensor:
        return to_tensor(self.store.get(idx % len(self.store)))

    def describe(self, idx: int) -> str:
        """The file behind item idx, for error messages."""
        return self.store.paths[idx % len(self.store)]

    def item_sizes(self) -> list[tuple[int, int]]:
        """(H, W) of each distinct image (items 0 .. len / repeat - 1), from the headers."""
        return [self.store.size(i) for i in range(len(self.store))]

    def target_path(self, idx: int) -> str:
        """The image a super-resolved item idx is compared with: its own file."""
        return self.describe(idx)


@register('paired-image-folders')
class PairedImageFolders(Dataset):
    """Pairs (img_1, img_2) of files matched by name across two folders (`babyx2.png` in
    root_path_1 pairs with `baby.png` in root_path_2); options as for `image-folder`, where
    the split file may list either file's name or the shared stem."""

    def __init__(self, root_path_1: str, root_path_2: str, split_file: Optional[str] = None,
                 split_key: Optional[str] = None, first_k: Optional[int] = None, repeat: int = 1,
                 cache: str = 'none'):
        check_options(repeat, first_k, f'{root_path_1} + {root_path_2}')
        pairs = pair_names(list_images(root_path_1), list_images(root_path_2), root_path_1, root_path_2)
        if split_file is not None:
            by_name = {}
            for pair in pairs:
                for n in (*pair, name_key(pair[0], True), name_key(pair[1], True)):
                    by_name.setdefault(n, pair)
            listed = load_split(split_file, split_key)
            missing = [n for n in listed if n not in by_name]
            if missing:
                raise UserError(f'{missing[0]} (listed in {split_file}) is not an image in '
                                f'{root_path_1} or {root_path_2}')
            pairs = [by_name[n] for n in listed]
        if first_k is not None:
            pairs = pairs[:first_k]
        self.store_1 = ImageStore(root_path_1, [p[0] for p in pairs], cache)
        self.store_2 = ImageStore(root_path_2, [p[1] for p in pairs], cache)
        self.repeat = repeat

    def __len__(self) -> int:
        return len(self.store_1) * self.repeat

    def __getitem__(self, idx: int) -> tuple[Tensor, Tensor]:
        i = idx % len(self.store_1)
        return to_tensor(self.store_1.get(i)), to_tensor(self.store_2.get(i))

    def item_sizes(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """((H, W) of folder 1's image, (H, W) of folder 2's) of each distinct pair, from the headers."""
        return [(self.store_1.size(i), self.store_2.size(i)) for i in range(len(self.store_1))]

    def describe(self, idx: int) -> str:
        """The pair of files behind item idx, for error messages."""
        i = idx % len(self.store_1)
        return f'{self.store_1.paths[i]} / {self.store_2.paths[i]}'

    def target_path(self, idx: int) -> str:
        """The image a super-resolved item idx is compared with: folder 2's (HR) file."""
        return self.store_2.paths[idx % len(self.store_1)]
