"""The runtime class: lifecycle, modes, caller-owned buffers, the text cache, steady state, threads."""
import threading

import numpy as np
import pytest

from pslg.runtime import Pipeline
from pslg.runtime.errors import (BoxError, ClosedError, ComponentMissing, ImageError, NoImageError, ParameterError,
                                 StaleImageError, TextError)
from pslg.runtime.image import load_image
from tests.runner_options import CPU

BOX = (150.0, 160.0, 230.0, 250.0)


@pytest.fixture(scope="module")
def image(data_dir):
    return load_image(data_dir / "osbs_029.png")


@pytest.fixture(scope="module")
def pipeline(pslg_small):
    with Pipeline.open(pslg_small, CPU) as p:
        yield p


def test_lifecycle(pslg_small, image):
    p = Pipeline.open(pslg_small, CPU)
    assert {"kernels", "graphs"} <= set(p.open_timings_ms)
    with pytest.raises(NoImageError):
        p.segment(box=BOX)
    p.set_image(image)
    assert p.segment(box=BOX, mode="box").mask.shape == image.shape[:2]
    p.close()
    p.close()
    for call in (lambda: p.set_image(image), lambda: p.segment(box=BOX), lambda: p.locate("a tree")):
        with pytest.raises(ClosedError):
            call()
    with Pipeline.open(pslg_small, CPU, warmup=False) as q:
        pass
    with pytest.raises(ClosedError):
        q.set_image(image)


def test_full_chain_from_text(pipeline, image):
    pipeline.set_image(image)
    r = pipeline.segment(text="the tree in the middle", mode="full")
    assert r.box_source == "text" and r.phrase == "the tree in the middle"
    assert 0.0 <= r.grounding.score <= 1.0 and r.grounding.boxes_cxcywh.shape == (10, 4)
    assert r.point_source == "cfpg" and r.box[0] <= r.point[0] < r.box[2] and r.box[1] <= r.point[1] < r.box[3]
    assert r.sam_score is not None and r.mbo.iterations >= 1 and r.mbo.start == "mask"
    assert {"tokenise", "text_encoder", "grounding", "cfpg", "sam_decoder", "mbo", "total"} <= set(r.timings_ms)
    assert any("RANDOM" in w for w in r.warnings)
    assert r.to_json()["grounding"]["box"] == pytest.approx(list(r.grounding.box))


def test_modes(pipeline, image):
    pipeline.set_image(image)
    box = pipeline.segment(box=BOX, mode="box")
    assert box.point is None and box.mbo is None and box.cfpg is None
    bp = pipeline.segment(box=BOX, mode="box+point")
    assert bp.point_source == "cfpg" and bp.mbo is None
    classical = pipeline.segment(box=BOX, mode="classical")
    assert classical.sam_score is None and classical.mbo.start == "box" and classical.mask.any()
    # classical on a given box uses no learned weights: no random-weights warning; SAM modes carry it
    assert not any("RANDOM" in w for w in classical.warnings) and any("RANDOM" in w for w in bp.warnings)
    user = pipeline.segment(box=BOX, point=(190, 205), mode="box+point")
    assert user.point_source == "user" and list(user.point) == [190, 205]
    with pytest.raises(ParameterError):
        pipeline.segment(box=BOX, mode="sam-only")
    with pytest.raises(ParameterError):
        pipeline.segment(mode="full")


def test_full_mode_is_mbo_on_the_box_point_mask(pipeline, image):
    """Full mode refines SAM's mask in place; the same as refining a copy of box+point's mask."""
    from pslg.runtime.mbo import refine
    pipeline.set_image(image)
    sam = pipeline.segment(box=BOX, mode="box+point")
    full = pipeline.segment(box=BOX, mode="full")
    prior = sam.mask.copy()
    expected = refine(image, prior, BOX, point=sam.point, out=np.zeros(image.shape[:2], np.uint8))
    np.testing.assert_array_equal(full.mask, expected.mask.astype(bool))
    np.testing.assert_array_equal(sam.mask, prior)


def test_caller_owned_buffer(pipeline, image):
    pipeline.set_image(image)
    for dtype in (np.uint8, bool):
        out = np.zeros(image.shape[:2], dtype)
        r = pipeline.segment(box=BOX, mode="full", out=out)
        assert np.shares_memory(r.mask, out) and out.astype(bool).sum() == r.mask.sum()
    with pytest.raises(ParameterError):
        pipeline.segment(box=BOX, out=np.zeros((3, 3), np.uint8))


def test_repeated_phrase_skips_the_text_encoder(pipeline, image):
    pipeline.set_image(image)
    pipeline.clear_text_cache()
    runs = pipeline.grounder.text_runs
    first = pipeline.segment(text="the dead tree", mode="box")
    second = pipeline.segment(text="The  dead TREE", mode="box")
    assert pipeline.grounder.text_runs == runs + 1
    assert not first.grounding.text_cached and second.grounding.text_cached
    np.testing.assert_array_equal(first.mask, second.mask)
    pipeline.locate("another phrase")
    assert pipeline.grounder.text_runs == runs + 2


def test_phrases_longer_than_the_profile_are_truncated_with_a_warning(pipeline, image):
    pipeline.set_image(image)
    r = pipeline.locate("the tall tree " * 20)
    assert r.truncated and any("truncated" in w for w in r.warnings)
    for phrase in ("", "   "):
        with pytest.raises(TextError):
            pipeline.locate(phrase)


@pytest.mark.slow
def test_steady_state_does_not_grow(pipeline, image):
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    pipeline.set_image(image)
    out = np.zeros(image.shape[:2], np.uint8)
    for _ in range(20):
        pipeline.segment(box=BOX, mode="full", out=out)
    before = proc.memory_info().rss
    for _ in range(250):                  # a leak of 16 kB a query (a tenth of this image's mask) fails
        pipeline.segment(box=BOX, mode="full", out=out)
    assert (proc.memory_info().rss - before) / 2**20 < 4.0


def test_overwriting_the_callers_frame_after_set_image_changes_no_answer(pipeline, image, data_dir):
    frame = image.copy()
    handle = pipeline.set_image(frame)
    expected = pipeline.segment(box=BOX, mode="full").mask.copy()
    frame[:] = load_image(data_dir / "soap_061.png")          # a camera loop reusing its buffer
    again = pipeline.segment(box=BOX, mode="full")
    np.testing.assert_array_equal(again.mask, expected)
    assert again.image.current and handle.current and again.image.shape == image.shape[:2]


@pytest.mark.parametrize("gap_s", [0.0, 0.002])
def test_two_threads_sharing_a_pipeline_each_get_their_own_images_answers(pslg_small, data_dir, gap_s):
    """No exclusive(), no handles: each thread sets its image and queries; per-thread images make it safe."""
    import time
    images = [load_image(data_dir / "osbs_029.png"), load_image(data_dir / "soap_061.png")]
    with Pipeline.open(pslg_small, CPU) as p:
        expected = [p.segment(box=BOX, mode="full", image=img).mask.copy() for img in images]
        assert not np.array_equal(*expected)
        wrong, start = [], threading.Barrier(2)

        def worker(i):
            start.wait()
            for _ in range(6):
                p.set_image(images[i])
                time.sleep(gap_s)
                result = p.segment(box=BOX, mode="full")
                if not np.array_equal(result.mask, expected[i]):
                    wrong.append(i)

        threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wrong == []


def test_handles_name_the_image_and_go_stale(pipeline, image, data_dir):
    first = pipeline.set_image(image)
    mask_first = pipeline.segment(box=BOX, mode="box").mask.copy()
    second = pipeline.set_image(load_image(data_dir / "soap_061.png"))
    assert not first.current and second.current
    with pytest.raises(StaleImageError):
        pipeline.segment(box=BOX, mode="box", image=first)
    np.testing.assert_array_equal(pipeline.segment(box=BOX, mode="box", image=image).mask, mask_first)
    assert not second.current  # the array form stored its image as this thread's current one


def test_a_refused_image_leaves_the_previous_one(pipeline, image):
    pipeline.set_image(image)
    before = pipeline.segment(box=BOX, mode="box").mask.copy()
    for bad in (np.zeros((1, 5000, 3), np.uint8), np.zeros((8, 8, 3), np.float32), "not an image"):
        with pytest.raises(ImageError):
            pipeline.set_image(bad)
    with pytest.raises(BoxError):
        pipeline.segment(box=(500, 500, 600, 600), mode="box")
    np.testing.assert_array_equal(pipeline.segment(box=BOX, mode="box").mask, before)


def test_images_over_the_stated_bound_are_refused_and_buffers_follow_the_size(pslg_small, image):
    with Pipeline.open(pslg_small, CPU, warmup=False, max_image_pixels=400 * 400) as p:
        with pytest.raises(ImageError, match="max_image_pixels"):
            p.set_image(np.zeros((401, 400, 3), np.uint8))
        assert p.segment(box=BOX, mode="full", image=image).mask.shape == (400, 400)
        result = p.segment(box=(10, 10, 60, 60), mode="full", image=image[:100, :120])
        assert result.mask.shape == (100, 120) and p._local.slot.pixels.shape == (100, 120, 3)


def test_nodata_is_never_part_of_a_mask(pipeline, image):
    valid = np.ones(image.shape[:2], bool)
    valid[:, 190:] = False
    pipeline.set_image(image, valid=valid)
    for mode in ("box", "full", "classical"):
        mask = pipeline.segment(box=BOX, mode=mode).mask
        assert mask[:, :190].any() and not mask[:, 190:].any(), mode
    with pytest.raises(ImageError, match="all nodata"):
        pipeline.set_image(image, valid=np.zeros(image.shape[:2], bool))
    with pytest.raises(ImageError, match="valid must be"):
        pipeline.set_image(image, valid=valid[:10])


def test_the_sam_encoder_runs_only_for_sam_queries(pslg_small, image):
    with Pipeline.open(pslg_small, CPU) as p:
        p.set_image(image)
        assert p.image_timings_ms == {}
        classical = p.segment(box=BOX, mode="classical")
        assert "sam_encoder" not in classical.timings_ms and "sam_encoder" not in p._per_image
        first = p.segment(box=BOX, mode="box")
        second = p.segment(box=BOX, mode="full")
        assert "sam_encoder" in first.timings_ms and "sam_encoder" not in second.timings_ms
        assert set(p.image_timings_ms) == {"sam_encoder"}
        p.locate("a tree")
        assert set(p.image_timings_ms) == {"sam_encoder", "letterbox"}


def test_sam_only_set_refuses_text(sam_tiny, image):
    with Pipeline.open(sam_tiny[0], CPU) as p:
        p.set_image(image)
        with pytest.raises(ComponentMissing, match="no LQVG"):
            p.segment(text="a tree")
        assert p.segment(box=BOX, mode="classical").mask.any()


def test_kernel_threads_set_the_numba_and_opencv_threads_of_the_cpu_stages(sam_tiny):
    import cv2
    from pslg.runtime import kernels
    before = kernels.threads(), cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        with Pipeline.open(sam_tiny[0], CPU, kernel_threads=1, warmup=False):
            assert (kernels.threads(), cv2.getNumThreads()) == (1, 1)
    finally:
        kernels.set_threads(before[0])
        cv2.setNumThreads(before[1])
