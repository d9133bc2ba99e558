"""RRSIS-D reader: one sample per sentence of a split, its ground truth kept as COCO RLE.

Layout (see the README)::

    ROOT/rrsisd/refs(unc).p              pickle: list of refs
    ROOT/rrsisd/instances.json           COCO images / annotations / categories
    ROOT/images/rrsisd/JPEGImages/*.jpg

A folder not laid out like this is a :class:`DatasetError`. Oddities inside the
data (a missing image file, a mask whose size differs from its image, an
unknown category, an annotation that is missing or not RLE) become the
sample's ``problems``; a sample without usable ground truth is kept with
``rles=None`` so the evaluator reports it instead of dropping it.

The masks are decoded with pycocotools (the ``[eval]`` extra), checked so
that a corrupt RLE is a :class:`DatasetError`, never a wrong mask.
"""
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pslg.runtime.errors import DatasetError, ParameterError
from pslg.runtime.extras import require

REFS = Path("rrsisd") / "refs(unc).p"
INSTANCES = Path("rrsisd") / "instances.json"
IMAGES = Path("images") / "rrsisd" / "JPEGImages"
REF_KEYS = ("image_id", "split", "sentences", "file_name", "category_id", "ann_id")


@dataclass
class Sample:
    """One sentence: its image, phrase, category name and ground truth (COCO RLE dicts, their union)."""

    sent_id: int
    image_path: Path
    phrase: str
    category: str
    rles: list = None
    problems: list = field(default_factory=list)

    def mask(self):
        """The ground truth as an H x W bool array; DatasetError when there is none or it is corrupt."""
        if self.rles is None:
            raise DatasetError(f"sentence {self.sent_id} has no usable ground truth")
        masks = [decode_rle(rle) for rle in self.rles]
        return np.logical_or.reduce(masks)


def decode_rle(rle):
    """Decode one COCO RLE dict ``{size: [h, w], counts}`` (compressed string/bytes or a list of runs) to H x W bool.

    pycocotools refuses runs that overflow the size but fills an RLE that
    covers too few pixels with whatever memory held; so the decoded mask is
    encoded again and must give back the same runs.
    """
    coco = require("pycocotools.mask", "eval", "the RRSIS-D evaluator")
    h, w = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, list):
        if any(not isinstance(c, int) or c < 0 for c in counts) or sum(counts) != h * w:
            raise DatasetError(f"RLE runs must be non-negative and cover its size {h}x{w} ({h * w} pixels)")
        counts = coco.frPyObjects({"size": [h, w], "counts": counts}, h, w)["counts"]
    counts = counts.encode("utf-8") if isinstance(counts, str) else bytes(counts)
    try:
        mask = coco.decode({"size": [h, w], "counts": counts})
    except (ValueError, TypeError) as e:
        raise DatasetError(f"RLE does not decode to a {h}x{w} mask: {e}") from None
    if mask.max(initial=0) > 1 or coco.encode(np.asfortranarray(mask))["counts"] != counts:
        raise DatasetError(f"RLE runs do not cover its size {h}x{w} exactly (corrupt or truncated counts)")
    return mask.astype(bool)


class _PlainUnpickler(pickle.Unpickler):
    """Reads plain lists, dicts, strings and numbers only: a pickle from elsewhere may otherwise run code."""

    ALLOWED = {("builtins", "set"), ("builtins", "frozenset"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise DatasetError(f"the refs pickle refers to {module}.{name}; only plain lists, dicts, strings "
                               "and numbers are read (a pickle can run code)")
        return super().find_class(module, name)


def _read_refs(path):
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: not an RRSIS-D folder (see the layout in the README)")
    try:
        with open(path, "rb") as f:
            refs = _PlainUnpickler(f, encoding="utf-8").load()
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(f"{path} is not a readable pickle: {e}") from None
    if not isinstance(refs, list):
        raise DatasetError(f"{path} must hold a list of refs, it holds a {type(refs).__name__}")
    for k, ref in enumerate(refs):
        if not isinstance(ref, dict) or any(key not in ref for key in REF_KEYS):
            raise DatasetError(f"{path}: ref {k} is not a dict with the keys {', '.join(REF_KEYS)}")
        if not isinstance(ref["sentences"], list) or not all(
                isinstance(s, dict) and "sent_id" in s for s in ref["sentences"]):
            raise DatasetError(f"{path}: ref {k} has sentences that are not dicts with a sent_id")
    return refs


def _index(instances, path, section, keys):
    """``{id: entry}`` of one section of instances.json, each entry checked for ``keys``."""
    entries = instances.get(section)
    if not isinstance(entries, list):
        raise DatasetError(f"{path} has no '{section}' list: not COCO-style RRSIS-D instances")
    for entry in entries:
        if not isinstance(entry, dict) or any(key not in entry for key in keys):
            raise DatasetError(f"{path}: an entry of '{section}' lacks one of the keys {', '.join(keys)}")
    return {entry["id"]: entry for entry in entries}


def _read_instances(path):
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: not an RRSIS-D folder (see the layout in the README)")
    try:
        instances = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path} is not JSON: {e}") from None
    if not isinstance(instances, dict):
        raise DatasetError(f"{path} must hold a JSON object with images, annotations and categories")
    return (_index(instances, path, "images", ("id", "height", "width")),
            _index(instances, path, "annotations", ("id", "segmentation")),
            {c["id"]: c["name"] for c in _index(instances, path, "categories", ("id", "name")).values()})


def _is_rle(rle):
    size = rle.get("size") if isinstance(rle, dict) else None
    return (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, int) and v > 0 for v in size)
            and isinstance(rle.get("counts"), (str, bytes, list)))


def _ground_truth(ref, images, annotations):
    """The ref's RLE list (None when unusable) and the problems found with it and its image."""
    annotation = annotations.get(ref["ann_id"])
    if annotation is None:
        return None, [f"annotation {ref['ann_id']} is not in instances.json"]
    rles = annotation["segmentation"]
    rles = [rles] if isinstance(rles, dict) else rles
    if not isinstance(rles, list) or not rles or not all(_is_rle(r) for r in rles):
        return None, [f"annotation {ref['ann_id']}: segmentation is not a non-empty list of COCO RLE dicts"]
    sizes = {tuple(r["size"]) for r in rles}
    if len(sizes) > 1:
        return None, [f"annotation {ref['ann_id']}: its RLEs have different sizes {sorted(sizes)}"]
    image = images.get(ref["image_id"])
    if image is None:
        return rles, [f"image_id {ref['image_id']} is not in instances.json"]
    (h, w), = sizes
    if (h, w) != (image["height"], image["width"]):
        return rles, [f"mask is {h}x{w} but its image is {image['height']}x{image['width']}"]
    return rles, []


def load_split(root, split):
    """Every sentence of ``split`` as a :class:`Sample`, in the refs' order."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist")
    refs = _read_refs(root / REFS)
    images, annotations, categories = _read_instances(root / INSTANCES)
    if not (root / IMAGES).is_dir():
        raise DatasetError(f"{root / IMAGES} does not exist: not an RRSIS-D folder (see the layout in the README)")
    splits = sorted({str(ref["split"]) for ref in refs})
    if split not in splits:
        raise ParameterError(f"unknown split {split!r}: {root / REFS} has {', '.join(splits) or 'no refs'}")
    samples, seen = [], set()
    for ref in refs:
        if ref["split"] != split:
            continue
        rles, problems = _ground_truth(ref, images, annotations)
        image_path = root / IMAGES / ref["file_name"]
        if not image_path.is_file():
            problems.append(f"image file {ref['file_name']} is missing")
        category = categories.get(ref["category_id"])
        if category is None:
            category = f"unknown category {ref['category_id']}"
            problems.append(f"category_id {ref['category_id']} is not in instances.json")
        for sentence in ref["sentences"]:
            sample = Sample(sentence["sent_id"], image_path, sentence.get("raw") or sentence.get("sent") or "",
                            category, rles, list(problems))
            if not sample.phrase:
                sample.problems.append("the sentence has no text")
            if sample.sent_id in seen:
                sample.rles = None
                sample.problems.append(f"sent_id {sample.sent_id} appears more than once; only the first is scored")
            seen.add(sample.sent_id)
            samples.append(sample)
    return samples
