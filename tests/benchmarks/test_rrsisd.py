"""The RRSIS-D reader: RLE decoding (pycocotools, checked), samples, oddities and refused folders."""
import json
import pickle

import numpy as np
import pytest

from pslg.benchmarks.rrsisd import INSTANCES, REF_KEYS, REFS, decode_rle, load_split
from pslg.runtime.errors import DatasetError, ParameterError
from .rrsisd_fixture import GROUND_TRUTH, NATIVE, build_rrsisd, encode


def _random_masks():
    rng = np.random.default_rng(1)
    yield np.zeros((7, 5), bool)
    yield np.ones((5, 9), bool)
    yield rng.random((37, 53)) > 0.5  # many short runs, non-square (column-major order matters)
    big = np.zeros((300, 280), bool)  # runs over 2**15 pixels: numbers of 4+ chunks, negative deltas
    big[10:290, 5:200] = True
    big[150, 100] = False
    yield big
    single = np.zeros((11, 13), bool)
    single[10, 12] = True
    yield single


@pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")  # numpy 2 vs pycocotools, harmless
@pytest.mark.parametrize("mask", [m for masks in GROUND_TRUTH.values() for m in masks] + list(_random_masks()))
def test_decode_rle_gives_back_the_mask(mask):
    rle = encode(mask)
    ours = decode_rle(rle)
    assert ours.dtype == bool and ours.shape == mask.shape
    np.testing.assert_array_equal(ours, mask)


def test_decode_rle_accepts_bytes_and_uncompressed_counts():
    mask = np.zeros((4, 3), bool)
    mask[1:3, 1] = True  # column-major runs: 5 zeros, 2 ones, 5 zeros
    np.testing.assert_array_equal(decode_rle({"size": [4, 3], "counts": [5, 2, 5]}), mask)
    np.testing.assert_array_equal(decode_rle({"size": [4, 3], "counts": encode(mask)["counts"].encode()}), mask)


@pytest.mark.parametrize("counts, message", [
    ("5" + chr(200), "does not decode"),
    ("5 ", "does not decode"),
    ("0P", "does not decode"),  # 'P' = 32 + 48: a continuation chunk at the end
    ("1", "do not cover"),      # one run of 1 pixel: too few for 2 x 2
    ("oooooooo0", "does not decode"),
    ("0O", "does not decode"),  # 'O' = 31 + 48: the 5-bit number -1
    ([2, 1], "cover its size"),
    ([2, -1, 3], "non-negative"),
])
def test_decode_rle_refuses_corrupt_counts(counts, message):
    with pytest.raises(DatasetError, match=message):
        decode_rle({"size": [2, 2], "counts": counts})


def test_split_has_one_sample_per_sentence_in_refs_order(tmp_path):
    samples = load_split(build_rrsisd(tmp_path), "test")
    assert [s.sent_id for s in samples] == [101, 102, 103, 104, 105, 106, 107, 108]
    first = samples[0]
    assert first.phrase == "the airplane at the top left" and first.category == "airplane"
    assert first.image_path == tmp_path / "images" / "rrsisd" / "JPEGImages" / "00001.jpg"
    assert samples[1].rles is samples[0].rles  # two sentences of one ref share its ground truth
    assert [s.sent_id for s in load_split(tmp_path, "train")] == [201]


def test_ground_truth_is_the_union_of_the_annotations_rles(tmp_path):
    samples = {s.sent_id: s for s in load_split(build_rrsisd(tmp_path), "test")}
    union = samples[105].mask()
    assert len(samples[105].rles) == 2 and union.sum() == NATIVE[105][2]
    np.testing.assert_array_equal(union, GROUND_TRUTH[4][0] | GROUND_TRUTH[4][1])


def test_oddities_are_problems_of_their_samples(tmp_path):
    samples = {s.sent_id: s for s in load_split(build_rrsisd(tmp_path), "test")}
    assert samples[101].problems == [] and samples[103].problems == []
    assert samples[104].category == "unknown category 99"
    assert samples[104].problems == ["category_id 99 is not in instances.json"]
    assert samples[106].problems == ["image file 00003.jpg is missing"]
    assert samples[107].problems == ["mask is 40x48 but its image is 48x48"]
    assert samples[107].mask().shape == (40, 48)
    assert samples[108].rles is None and samples[108].problems == ["annotation 99 is not in instances.json"]
    with pytest.raises(DatasetError, match="no usable ground truth"):
        samples[108].mask()


def _rewrite(root, refs=None, instances=None):
    if refs is not None:
        with open(root / REFS, "wb") as f:
            pickle.dump(refs, f)
    if instances is not None:
        (root / INSTANCES).write_text(json.dumps(instances))


def test_odd_annotations_and_duplicate_sentences_are_problems(tmp_path):
    root = build_rrsisd(tmp_path)
    with open(root / REFS, "rb") as f:
        refs = pickle.load(f)
    instances = json.loads((root / INSTANCES).read_text())
    instances["annotations"][1]["segmentation"] = [{"size": [48, 48], "counts": "x"}, {"size": [40, 48],
                                                                                        "counts": "x"}]
    instances["annotations"][2]["segmentation"] = [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]  # a polygon, not RLE
    refs[5]["sentences"].append({"sent_id": 101, "raw": "a second sentence 101"})
    _rewrite(root, refs, instances)
    samples = load_split(root, "test")
    by_id = {s.sent_id: s for s in samples}
    assert by_id[103].rles is None and "different sizes" in by_id[103].problems[0]
    assert by_id[104].rles is None and "not a non-empty list of COCO RLE" in by_id[104].problems[0]
    duplicate = [s for s in samples if s.phrase == "a second sentence 101"][0]
    assert duplicate.rles is None and "appears more than once" in duplicate.problems[-1]


def test_a_missing_data_folder_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="data folder .* does not exist"):
        load_split(tmp_path / "nothing", "test")


@pytest.mark.parametrize("damage, match", [
    (lambda root: (root / REFS).unlink(), r"refs\(unc\).p does not exist"),
    (lambda root: (root / INSTANCES).unlink(), "instances.json does not exist"),
    (lambda root: (root / REFS).write_bytes(b"not a pickle"), "not a readable pickle"),
    (lambda root: (root / INSTANCES).write_text("{not json"), "is not JSON"),
    (lambda root: _rewrite(root, refs={"a": 1}), "must hold a list of refs"),
    (lambda root: _rewrite(root, refs=[{"split": "test"}]), "ref 0 is not a dict with the keys"),
    (lambda root: _rewrite(root, refs=[{**dict.fromkeys(REF_KEYS, 1), "sentences": ["x"]}]), "sentences that are"),
    (lambda root: _rewrite(root, instances=[]), "must hold a JSON object"),
    (lambda root: _rewrite(root, instances={"images": []}), "has no 'annotations' list"),
    (lambda root: _rewrite(root, instances={"images": [{"id": 1}], "annotations": [], "categories": []}),
     "lacks one of the keys"),
    (lambda root: (root / "images" / "rrsisd" / "JPEGImages").rename(root / "elsewhere"), "JPEGImages does not"),
])
def test_a_folder_not_shaped_like_rrsisd_is_a_dataset_error(tmp_path, damage, match):
    root = build_rrsisd(tmp_path)
    damage(root)
    with pytest.raises(DatasetError, match=match):
        load_split(root, "test")


class _Opener:
    """A pickled object whose unpickling would call os.system: the reader must refuse it."""

    def __reduce__(self):
        import os
        return os.system, ("echo should-not-run",)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    root = build_rrsisd(tmp_path)
    _rewrite(root, refs=[_Opener()])
    with pytest.raises(DatasetError, match="refers to (posix|os).system"):
        load_split(root, "test")


def test_unknown_split_is_a_parameter_error_naming_the_splits(tmp_path):
    with pytest.raises(ParameterError, match="unknown split 'testA'.*test, train, val"):
        load_split(build_rrsisd(tmp_path), "testA")
