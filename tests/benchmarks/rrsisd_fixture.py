"""A small RRSIS-D-format folder whose metrics are known by construction.

Images are 48 x 48, so the 480 protocol scales every mask by exactly 10 (I and
U x 100), except the odd mask of 00004.jpg, which is 40 x 48 (x 12 / x 10).
Every ground truth and prediction is a rectangle, so I and U are written
below by hand. The RLEs are made by pycocotools, as the released files were.
"""
import json
import pickle
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

CATEGORIES = ["Expressway-Service-area", "Expressway-toll-station", "airplane", "airport", "baseballfield",
              "basketballcourt", "bridge", "chimney", "dam", "golffield", "groundtrackfield", "harbor", "overpass",
              "ship", "stadium", "storagetank", "tenniscourt", "trainstation", "vehicle", "windmill"]
AIRPLANE, SHIP = 2, 13
SIZE = 48


def rect(r0, r1, c0, c1, shape=(SIZE, SIZE)):
    """A bool mask with rows r0..r1-1 and columns c0..c1-1 set."""
    mask = np.zeros(shape, bool)
    mask[r0:r1, c0:c1] = True
    return mask


#: ref_id -> (split, image file, category_id, ann_id, [(sent_id, phrase)]);
#: images 00001/00002/00004 exist, 00003.jpg does not; ann 99 is not in instances.json.
REFS = {
    1: ("test", "00001.jpg", AIRPLANE, 1, [(101, "the airplane at the top left"), (102, "the plane in the corner")]),
    2: ("test", "00002.jpg", SHIP, 2, [(103, "the ship in the middle")]),
    3: ("test", "00001.jpg", 99, 3, [(104, "the thing at the bottom right")]),
    4: ("test", "00002.jpg", SHIP, 4, [(105, "the ship at the top right")]),
    5: ("test", "00003.jpg", SHIP, 5, [(106, "the ship whose image is missing")]),
    6: ("test", "00004.jpg", AIRPLANE, 6, [(107, "the airplane with an odd mask")]),
    7: ("train", "00001.jpg", AIRPLANE, 1, [(201, "a training sentence")]),
    8: ("val", "00002.jpg", SHIP, 2, [(301, "a validation sentence")]),
    9: ("test", "00001.jpg", AIRPLANE, 99, [(108, "the airplane without annotation")]),
}
IMAGE_IDS = {"00001.jpg": 1, "00002.jpg": 2, "00003.jpg": 3, "00004.jpg": 4}
#: ann_id -> the masks whose union is the ground truth (00004.jpg's is 40 x 48, its image 48 x 48)
GROUND_TRUTH = {
    1: [rect(0, 10, 0, 10)],
    2: [rect(20, 30, 10, 20)],
    3: [rect(30, 40, 30, 40)],
    4: [rect(0, 10, 30, 40), rect(5, 15, 35, 45)],  # overlap 5 x 5: union 175
    5: [rect(0, 10, 0, 10)],
    6: [rect(10, 20, 10, 20, shape=(40, SIZE))],
}
#: sent_id -> predicted mask at image size; 105 has none
PREDICTIONS = {
    101: rect(0, 10, 0, 10),
    102: rect(0, 10, 0, 8),
    103: rect(20, 30, 10, 16),
    104: rect(30, 39, 30, 40),
    106: rect(0, 5, 0, 10),
    107: rect(0, SIZE, 0, SIZE),
}
#: sent_id -> (category, I, U) of PREDICTIONS, by hand. Sentence 108 is excluded (no annotation).
NATIVE = {
    101: ("airplane", 100, 100),
    102: ("airplane", 80, 100),
    103: ("ship", 60, 100),
    104: ("unknown category 99", 90, 100),
    105: ("ship", 0, 175),
    106: ("ship", 50, 100),
    107: ("airplane", 100, 40 * 48),
}
#: the 480 protocol: x 100, except 107 (ground truth 40 x 48 -> rows x 12, columns x 10)
P480 = {**{k: (c, 100 * i, 100 * u) for k, (c, i, u) in NATIVE.items()}, 107: ("airplane", 120 * 100, 480 * 480)}


def encode(mask):
    """COCO compressed RLE of a bool mask, with ``counts`` as str (as in a JSON file)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def build_rrsisd(root):
    """Write the folder under ``root`` and return its path."""
    root = Path(root)
    images_dir = root / "images" / "rrsisd" / "JPEGImages"
    images_dir.mkdir(parents=True)
    (root / "rrsisd").mkdir()
    rng = np.random.default_rng(0)
    for name in ("00001.jpg", "00002.jpg", "00004.jpg"):
        cv2.imwrite(str(images_dir / name), rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    refs = [{"image_id": IMAGE_IDS[image], "split": split, "file_name": image, "category_id": category,
             "ann_id": ann, "ref_id": ref_id, "sent_ids": [s for s, _ in sentences],
             "sentences": [{"tokens": phrase.split(), "raw": phrase, "sent_id": s, "sent": phrase}
                           for s, phrase in sentences]}
            for ref_id, (split, image, category, ann, sentences) in REFS.items()]
    with open(root / "rrsisd" / "refs(unc).p", "wb") as f:
        pickle.dump(refs, f)
    category_of = {ann: category for _, _, category, ann, _ in REFS.values()}
    image_of = {ann: IMAGE_IDS[image] for _, image, _, ann, _ in REFS.values()}
    instances = {
        "images": [{"file_name": name, "height": SIZE, "width": SIZE, "id": i} for name, i in IMAGE_IDS.items()],
        "annotations": [{"id": ann, "image_id": image_of[ann], "bbox": [0, 0, 1, 1], "area": 1,
                         "categories_id": category_of[ann], "segmentation": [encode(m) for m in masks]}
                        for ann, masks in GROUND_TRUTH.items()],
        "categories": [{"id": i, "name": name} for i, name in enumerate(CATEGORIES)],
    }
    (root / "rrsisd" / "instances.json").write_text(json.dumps(instances))
    return root


def write_predictions(folder, predictions=PREDICTIONS):
    """One PNG per sentence, ``<sent_id>.png``, 0 / 255."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for sent_id, mask in predictions.items():
        cv2.imwrite(str(folder / f"{sent_id}.png"), mask.astype(np.uint8) * 255)
    return folder
