"""The runtime class: lifecycle, modes, caller-owned buffers, the text cache, steady state, threads."""
import threading

import numpy as np
import pytest

from pslg.runtime import Pipeline
from pslg.runtime.errors import ClosedError, ComponentMissing, NoImageError, ParameterError, TextError
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
    user = pipeline.segment(box=BOX, point=(190, 205), mode="box+point")
    assert user.point_source == "user" and list(user.point) == [190, 205]
    with pytest.raises(ParameterError):
        pipeline.segment(box=BOX, mode="sam-only")
    with pytest.raises(ParameterError):
        pipeline.segment(mode="full")


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
    for _ in range(30):
        pipeline.segment(box=BOX, mode="full", out=out)
    before = proc.memory_info().rss
    for _ in range(500):
        pipeline.segment(box=BOX, mode="full", out=out)
    assert (proc.memory_info().rss - before) / 2**20 < 4.0


def test_concurrent_queries_on_one_image_do_not_share_buffers(pslg_small, image):
    """Each public method holds the lock: two threads querying different boxes at once get their own answers."""
    boxes = [BOX, (40.0, 30.0, 120.0, 110.0)]
    with Pipeline.open(pslg_small, CPU) as p:
        p.set_image(image)
        expected = [p.segment(box=b, mode="full").mask.copy() for b in boxes]
        wrong, start = [], threading.Barrier(2)

        def worker(i):
            start.wait()
            for _ in range(6):
                if not np.array_equal(p.segment(box=boxes[i], mode="full").mask, expected[i]):
                    wrong.append(i)

        threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not np.array_equal(*expected) and wrong == []


def test_the_sam_encoder_runs_only_for_sam_queries(pslg_small, image):
    with Pipeline.open(pslg_small, CPU) as p:
        p.set_image(image)
        assert p.image_timings_ms == {}
        classical = p.segment(box=BOX, mode="classical")
        assert "sam_encoder" not in classical.timings_ms and p._encoding is None
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
