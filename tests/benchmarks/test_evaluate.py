"""``pslg eval``: hand-computed metrics reproduced, resuming after a crash, oddities reported, bad input refused."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from pslg.benchmarks.evaluate import ResultStore, evaluate_pipeline
from pslg.benchmarks.rrsisd import INSTANCES, load_split
from pslg.runtime.cli import main
from pslg.runtime.errors import DatasetError, ModelSetNotFound, ParameterError
from pslg.runtime.image import load_image
from .rrsisd_fixture import NATIVE, P480, PREDICTIONS, REFS, build_rrsisd, write_predictions

PHRASE_TO_SENT = {phrase: sent_id for *_, sentences in REFS.values() for sent_id, phrase in sentences}
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _expected(table):
    """mIoU, oIoU and P@X written out from the fixture's hand-made (category, I, U), independently of metrics.py."""
    ious = [i / u for _, i, u in table]
    out = {"n": len(table), "mIoU": sum(ious) / len(ious),
           "oIoU": sum(i for _, i, _ in table) / sum(u for _, _, u in table)}
    out.update({f"P@{t}": sum(v >= t for v in ious) / len(ious) for t in THRESHOLDS})
    return out


def _assert_metrics(got, expected):
    assert got["n"] == expected["n"]
    for key in ["mIoU", "oIoU"] + [f"P@{t}" for t in THRESHOLDS]:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key


def _eval(root, preds, work, *extra):
    return main(["eval", "--predictions", str(preds), "--data", str(root), "--work", str(work), *extra])


@pytest.mark.parametrize("protocol, table", [("native", NATIVE), ("480", P480)])
def test_predictions_reproduce_the_hand_computed_metrics(tmp_path, capsys, protocol, table):
    root, preds = build_rrsisd(tmp_path / "data"), write_predictions(tmp_path / "preds")
    assert _eval(root, preds, tmp_path / "work", "--protocol", protocol, "--json", str(tmp_path / "out.json")) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert (result["protocol"], result["split"], result["mode"], result["samples"], result["scored"],
            result["excluded"]) == (protocol, "test", None, 8, 7, 1)
    _assert_metrics(result["overall"], _expected(list(table.values())))
    for name in ("airplane", "ship", "unknown category 99"):
        _assert_metrics(result["categories"][name], _expected([row for row in table.values() if row[0] == name]))
    # a few of the numbers spelled out: IoUs 1, .8, .6, .9, 0, .5, 100/1920
    assert result["overall"]["P@0.5"] == 5 / 7 and result["overall"]["P@0.9"] == 2 / 7
    assert math.isclose(result["overall"]["mIoU"], (3.8 + 100 / 1920) / 7, abs_tol=1e-12)
    out, err = capsys.readouterr()
    assert f"protocol {protocol}" in out and "gIoU" in out and "cIoU" in out
    assert "overall" in out and "unknown category 99" in out and "7/7" in err


def test_oddities_are_reported_and_scored(tmp_path, capsys):
    root, preds = build_rrsisd(tmp_path / "data"), write_predictions(tmp_path / "preds")
    assert _eval(root, preds, tmp_path / "work", "--json", str(tmp_path / "out.json")) == 0
    problems = {p["sent_id"]: p["problems"] for p in json.loads((tmp_path / "out.json").read_text())["problems"]}
    assert set(problems) == {104, 105, 106, 107, 108}
    assert problems[104] == ["category_id 99 is not in instances.json"]
    assert problems[105] == ["prediction 105.png is missing: scored as an empty mask"]
    assert problems[106] == ["image file 00003.jpg is missing"]
    assert problems[107] == ["mask is 40x48 but its image is 48x48",
                             "prediction is 48x48, ground truth 40x48 (scored after nearest resizing)"]
    assert problems[108] == ["annotation 99 is not in instances.json",
                             "excluded from the metrics: no usable ground truth"]
    out = capsys.readouterr().out
    assert "problems in 5 samples" in out and "sent 106 (00003.jpg): image file 00003.jpg is missing" in out


def test_a_ground_truth_that_cannot_be_decoded_is_excluded_and_reported(tmp_path):
    root, preds = build_rrsisd(tmp_path / "data"), write_predictions(tmp_path / "preds")
    instances = json.loads((root / INSTANCES).read_text())
    instances["annotations"][1]["segmentation"][0]["counts"] = "1"  # sentence 103: one run for 48 x 48 pixels
    (root / INSTANCES).write_text(json.dumps(instances))
    assert _eval(root, preds, tmp_path / "work", "--json", str(tmp_path / "out.json")) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert (result["scored"], result["excluded"]) == (6, 2)
    _assert_metrics(result["overall"], _expected([row for k, row in NATIVE.items() if k != 103]))
    problems = {p["sent_id"]: p["problems"] for p in result["problems"]}
    assert problems[103] == ["excluded from the metrics: RLE runs do not cover its size 48x48 exactly (corrupt or "
                             "truncated counts)"]


def test_limit_then_full_run_resumes_without_redoing_samples(tmp_path):
    root, preds = build_rrsisd(tmp_path / "data"), write_predictions(tmp_path / "preds")
    assert _eval(root, preds, tmp_path / "fresh", "--json", str(tmp_path / "fresh.json")) == 0
    assert _eval(root, preds, tmp_path / "work", "--limit", "3", "--json", str(tmp_path / "part.json")) == 0
    assert json.loads((tmp_path / "part.json").read_text())["samples"] == 3
    for sent_id in (101, 102, 103):  # were they scored again, their IoU would drop to 0
        (preds / f"{sent_id}.png").unlink()
    assert _eval(root, preds, tmp_path / "work", "--json", str(tmp_path / "full.json")) == 0
    fresh, full = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("fresh", "full"))
    assert (full["overall"], full["categories"]) == (fresh["overall"], fresh["categories"])
    lines = open(full["work"]).read().splitlines()
    assert "run" in json.loads(lines[0])
    assert sorted(json.loads(line)["sent_id"] for line in lines[1:]) == [101, 102, 103, 104, 105, 106, 107]


class FakePipeline:
    """The pipeline's interface, answering with the fixture's prediction for the phrase; may crash after k calls."""

    def __init__(self, crash_after=None):
        self.crash_after = crash_after
        self.images, self.calls = [], []

    def set_image(self, rgb):
        self.images.append(rgb)

    def segment(self, text, mode):
        if self.crash_after is not None and len(self.calls) == self.crash_after:
            raise RuntimeError("simulated crash")
        sent_id = PHRASE_TO_SENT[text]
        self.calls.append((sent_id, mode, int(self.images[-1].sum())))
        mask = PREDICTIONS.get(sent_id, np.zeros(self.images[-1].shape[:2], bool))
        return SimpleNamespace(mask=mask, box=np.array([0.0, 0.0, 4.0, 4.0]), timings_ms={"total": 1.5},
                               warnings=["RANDOM weights"])


def _pipeline_expected():
    return {**NATIVE, 106: ("ship", 0, 100)}  # 00003.jpg is missing: no prediction, an empty mask


def test_pipeline_sets_each_image_once_and_scores_its_masks(tmp_path):
    root = build_rrsisd(tmp_path / "data")
    samples = [s for s in load_split(root, "test") if s.rles is not None]
    fake = FakePipeline()
    with ResultStore(tmp_path / "work", {"split": "test"}) as store:
        records = evaluate_pipeline(samples, fake, "full", "native", store)
    assert len(fake.images) == 3  # 00001, 00002, 00004 (00003.jpg is missing)
    checksum = {name: int(load_image(root / "images/rrsisd/JPEGImages" / name).sum())
                for name in ("00001.jpg", "00002.jpg", "00004.jpg")}
    image_of = {sent_id: image for _, image, _, _, sentences in REFS.values() for sent_id, _ in sentences}
    assert [c[0] for c in fake.calls] == [101, 102, 104, 103, 105, 107]  # grouped by image
    assert all(mode == "full" and checksum[image_of[s]] == image_sum for s, mode, image_sum in fake.calls)
    assert [r["sent_id"] for r in records] == [s.sent_id for s in samples]
    assert {r["sent_id"]: (r["category"], r["I"], r["U"]) for r in records} == _pipeline_expected()
    assert records[0]["box"] == [0.0, 0.0, 4.0, 4.0] and records[0]["warnings"] == ["RANDOM weights"]
    assert "00003.jpg does not exist" in records[5]["problems"][0]


def test_pipeline_crash_then_resume_gives_the_numbers_of_one_run(tmp_path):
    root = build_rrsisd(tmp_path / "data")
    samples = [s for s in load_split(root, "test") if s.rles is not None]
    run = {"split": "test", "mode": "full"}
    with ResultStore(tmp_path / "once", run) as store:
        once = evaluate_pipeline(samples, FakePipeline(), "full", "native", store)
    with ResultStore(tmp_path / "work", run) as store, pytest.raises(RuntimeError, match="simulated crash"):
        evaluate_pipeline(samples, FakePipeline(crash_after=3), "full", "native", store)
    with open(store.path, "a") as f:
        f.write('{"sent_id": 103, "I": 6')  # the crash cut a line in half
    second = FakePipeline()
    with ResultStore(tmp_path / "work", run) as store:
        assert sorted(store.records) == [101, 102, 104]
        resumed = evaluate_pipeline(samples, second, "full", "native", store)
    assert [c[0] for c in second.calls] == [103, 105, 107] and len(second.images) == 2
    with ResultStore(tmp_path / "work", run) as store:  # the cut line is gone, the file reads whole
        assert sorted(store.records) == [101, 102, 103, 104, 105, 106, 107]
    strip = [{k: r[k] for k in ("sent_id", "I", "U", "problems")} for r in once]
    assert [{k: r[k] for k in ("sent_id", "I", "U", "problems")} for r in resumed] == strip


def test_a_work_file_with_a_broken_line_is_refused(tmp_path):
    with ResultStore(tmp_path, {"split": "test"}) as store:
        store.add({"sent_id": 1, "I": 1, "U": 2})
    with open(store.path, "a") as f:
        f.write("not json\n")
    with pytest.raises(ParameterError, match="line 3 is not a sample record"):
        ResultStore(tmp_path, {"split": "test"})


def test_a_work_file_of_another_run_is_refused(tmp_path):
    """The file name carries a hash of the settings; a file whose header names other settings is not resumed."""
    with ResultStore(tmp_path, {"split": "test", "mode": "box"}) as store:
        store.add({"sent_id": 1, "I": 1, "U": 2})
    other = {"split": "test", "mode": "full"}
    with ResultStore(tmp_path, other) as fresh:   # other settings: another file, nothing resumed
        assert fresh.path != store.path and fresh.records == {}
    fresh.path.write_text(store.path.read_text())  # a header that does not match its name
    with pytest.raises(ParameterError, match="is not the file of this run"):
        ResultStore(tmp_path, other)


@pytest.mark.parametrize("case, error", [
    ("data missing", DatasetError),
    ("data not rrsisd", DatasetError),
    ("unknown split", ParameterError),
    ("predictions missing", ParameterError),
    ("limit 0", ParameterError),
    ("mode with predictions", ParameterError),
    ("models missing", ModelSetNotFound),
])
def test_bad_input_ends_with_a_named_error_and_its_code(tmp_path, capsys, case, error):
    root, preds = build_rrsisd(tmp_path / "data"), write_predictions(tmp_path / "preds")
    (tmp_path / "junk").mkdir()
    args = {"data": root, "predictions": preds, "extra": []}
    if case == "data missing":
        args["data"] = tmp_path / "nothing"
    elif case == "data not rrsisd":
        args["data"] = tmp_path / "junk"
    elif case == "unknown split":
        args["extra"] = ["--split", "testB"]
    elif case == "predictions missing":
        args["predictions"] = tmp_path / "no_preds"
    elif case == "limit 0":
        args["extra"] = ["--limit", "0"]
    elif case == "mode with predictions":
        args["extra"] = ["--mode", "box"]
    source = ["--models", str(tmp_path / "no_models")] if case == "models missing" \
        else ["--predictions", str(args["predictions"])]
    argv = ["eval", *source, "--data", str(args["data"]), "--work", str(tmp_path / "work"), *args["extra"]]
    assert main(argv) == error.code
    err = capsys.readouterr().err
    assert error.__name__ in err and "Traceback" not in err


def test_models_with_an_unknown_mode_is_a_parameter_error(tmp_path, capsys):
    root = build_rrsisd(tmp_path / "data")
    argv = ["eval", "--models", str(tmp_path), "--data", str(root), "--mode", "magic", "--work", str(tmp_path / "w")]
    assert main(argv) == ParameterError.code
    assert "unknown mode 'magic'" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # refused before anything is written


@pytest.mark.slow
def test_models_end_to_end_with_a_real_model_set(pslg_small, tmp_path, capsys):
    """`pslg eval --models` on the fixture data with an exported set (random weights: the numbers mean nothing,
    the run must still score every sample, name its protocol and report the model set's warning)."""
    root = build_rrsisd(tmp_path / "data")
    out = tmp_path / "eval.json"
    assert main(["eval", "--models", str(pslg_small), "--data", str(root), "--split", "test", "--mode", "box",
                 "--limit", "3", "--work", str(tmp_path / "work"), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["protocol"] == "native" and result["mode"] == "box" and result["samples"] == 3
    assert 0.0 <= result["overall"]["mIoU"] <= 1.0
    assert result["warnings"]


@pytest.mark.slow
def test_the_ray_engine_scores_the_same_masks_as_the_local_one(ray_cluster, pslg_small, tmp_path):
    root = build_rrsisd(tmp_path / "data")
    out = {}
    for engine in ("local", "ray"):
        path = tmp_path / f"{engine}.json"
        assert main(["eval", "--models", str(pslg_small), "--data", str(root), "--mode", "box", "--limit", "4",
                     "--engine", engine, "--workers", "2" if engine == "ray" else "1", "--device", "cpu",
                     "--work", str(tmp_path / f"work-{engine}"), "--json", str(path)]) == 0
        out[engine] = json.loads(path.read_text())
    assert out["ray"]["overall"] == out["local"]["overall"] and out["ray"]["scored"] == 4
    assert [p["problems"] for p in out["ray"]["problems"]] == [p["problems"] for p in out["local"]["problems"]]
