"""Every parameter of the public API, given a wrong type or an out-of-range value, ends in a named PslgError.

One table: (call, parameter, bad value). Each row runs the real call with one
argument wrong and everything else valid.
"""
import numpy as np
import pytest

from pslg.runtime import Pipeline, modelset
from pslg.runtime.errors import PslgError
from pslg.runtime.grounding import Grounder
from pslg.runtime.image import load_image, to_rgb8
from tests.runner_options import CPU

BOX = (150.0, 160.0, 230.0, 250.0)
NOT_AN_INTEGER = [None, "7", 1.5, float("nan"), float("inf"), True, [1]]
BAD_BOXES = ["150,160,230,250", (1, 2, 3), (1, 2, 3, float("nan")), (True, 0, 5, 5), (0, 0, 10 ** 400, 5),
             [[150, 160], [230, 250]], object(), {"x1": 1}, (230, 160, 150, 250), (500, 500, 600, 600)]
BAD_POINTS = ["190,205", (190,), (190, float("inf")), (False, 1), (10 ** 400, 5), (5000, 5), (-1, 5)]
BAD_IMAGES = [None, "data/osbs_029.png", [[1, 2, 3]], np.zeros((8, 8, 3), np.float32), np.zeros((2, 8, 8, 3), np.uint8),
              np.zeros((0, 8, 3), np.uint8), np.zeros((8, 8, 3), bool), np.zeros((8, 8, 3), np.int16),
              np.zeros((8, 8, 5), np.uint8), np.zeros((1, 5000, 3), np.uint8)]
BAD_PHRASES = [None, 3, b"a tree", "", "   ", "\u200b\u2060", "a tree\ud800"]


def _read_only(shape):
    out = np.zeros(shape, bool)
    out.flags.writeable = False
    return out


def rows():
    """(name, function of the fixtures' dict, ...) for every parameter and bad value."""
    def segment(**kw):
        return lambda f: f["pipeline"].segment(**dict({"box": BOX, "mode": "box+point"}, **kw))

    table = []
    table += [(f"open.models_dir={v!r}", lambda f, v=v: Pipeline.open(v, CPU, warmup=False))
              for v in (None, 3, b"engines", "", "/no/such/folder")]
    table += [(f"open.runner={v!r}", lambda f, v=v: Pipeline.open(f["models"], v, warmup=False))
              for v in ("cpu", {"device": "cpu"}, 3)]
    for name, values in (("text_cache", [-1, 1.5, True, "32"]), ("warmup", ["yes", 1, None]),
                         ("verify", ["no", 0]), ("max_image_pixels", [0, -5, "big", 1.5, True])):
        table += [(f"open.{name}={v!r}", lambda f, n=name, v=v: Pipeline.open(f["models"], CPU, **{n: v}))
                  for v in values]
    table += [(f"set_image.image={v!r:.40}", lambda f, v=v: f["pipeline"].set_image(v)) for v in BAD_IMAGES]
    table += [(f"set_image.valid={v!r:.40}", lambda f, v=v: f["pipeline"].set_image(f["image"], valid=v))
              for v in ([1, 0], np.ones((3, 3), bool), np.ones((400, 400), np.float32), np.zeros((400, 400), bool),
                        "all")]
    table += [(f"segment.text={v!r}", lambda f, v=v: f["pipeline"].segment(text=v, mode="box")) for v in BAD_PHRASES]
    table += [(f"segment.box={v!r:.40}", segment(box=v)) for v in BAD_BOXES]
    table += [(f"segment.point={v!r:.40}", segment(point=v)) for v in BAD_POINTS]
    table += [(f"segment.mode={v!r}", segment(mode=v)) for v in ("sam", 3, None, "BOX")]
    table += [(f"segment.out={v!r:.40}", segment(out=v)) for v in (
        [[0]], np.zeros((400, 400), np.float32), np.zeros((40, 40), bool), np.zeros((400, 800), bool)[:, ::2],
        _read_only((400, 400)), "buffer")]
    table += [(f"segment.multimask={v!r}", segment(multimask=v)) for v in (1, "yes", None)]
    table += [(f"segment.seed={v!r}", segment(seed=v)) for v in NOT_AN_INTEGER]
    table += [(f"segment.image={v!r:.40}", segment(image=v)) for v in ("data/osbs_029.png", 3) + tuple(BAD_IMAGES[3:])]
    table += [("segment.nothing", lambda f: f["pipeline"].segment(mode="box"))]
    table += [(f"locate.text={v!r}", lambda f, v=v: f["pipeline"].locate(v)) for v in BAD_PHRASES]
    table += [(f"locate.image={v!r:.40}", lambda f, v=v: f["pipeline"].locate("a tree", image=v)) for v in (3, "x")]
    table += [(f"Grounder.cache_size={v!r}", lambda f, v=v: Grounder(f["models"], CPU, cache_size=v))
              for v in (-1, 2.5, True)]
    table += [(f"Grounder.options={v!r}", lambda f, v=v: Grounder(f["models"], v)) for v in ("cpu",)]
    table += [(f"Grounder.locate.image={v!r:.40}", lambda f, v=v: f["grounder"].locate(v, "a tree"))
              for v in BAD_IMAGES]
    table += [(f"Grounder.locate.phrase={v!r}", lambda f, v=v: f["grounder"].locate(f["image"], v))
              for v in BAD_PHRASES]
    table += [(f"Grounder.encode_tokens.ids={v!r:.40}", lambda f, v=v: f["grounder"].encode_tokens(v))
              for v in ("abc", [0, 2 ** 70], [[0, 1], [2, 3]], [], [0.0, 2.0], np.zeros(13, np.int64), [0, -1, 2])]
    table += [(f"Grounder.encode_tokens.attention_mask={v!r:.40}",
               lambda f, v=v: f["grounder"].encode_tokens([0, 5, 2], v)) for v in ([1, 1], [0, 0, 0], [1, 2, 1])]
    table += [(f"Grounder.ground.text={v!r}", lambda f, v=v: f["grounder"].ground(f["image"], v))
              for v in ("a tree", None)]
    table += [(f"modelset.open.verify={v!r}", lambda f, v=v: modelset.open(f["models"], verify=v)) for v in ("yes", 1)]
    table += [(f"to_rgb8.image={v!r:.40}", lambda f, v=v: to_rgb8(v)) for v in BAD_IMAGES[:-1]]
    table += [(f"load_image.path={v!r}", lambda f, v=v: load_image(v)) for v in (None, 3, "/no/such.png", "/tmp")]
    return table


@pytest.fixture(scope="module")
def fixtures(pslg_small, data_dir):
    image = load_image(data_dir / "osbs_029.png")
    with Pipeline.open(pslg_small, CPU, warmup=False) as pipeline, Grounder(pslg_small, CPU) as grounder:
        pipeline.set_image(image)
        yield {"models": pslg_small, "pipeline": pipeline, "grounder": grounder, "image": image}


@pytest.mark.parametrize("name, call", rows(), ids=[r[0] for r in rows()])
def test_bad_argument_is_a_named_error(name, call, fixtures):
    with pytest.raises(PslgError) as info:
        call(fixtures)
    assert info.value.message


def test_a_closed_pipeline_says_so_before_it_checks_the_arguments(pslg_small):
    from pslg.runtime.errors import ClosedError
    p = Pipeline.open(pslg_small, CPU, warmup=False)
    p.close()
    for call in (lambda: p.set_image("not an image"), lambda: p.segment(box="bad"), lambda: p.locate(None)):
        with pytest.raises(ClosedError):
            call()
