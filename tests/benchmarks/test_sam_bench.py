"""The SAM families benchmark's quick mode: every figure of the table is there and consistent."""
import json

import pytest

from pslg.benchmarks import sam as bench
from pslg.runtime.errors import ParameterError

pytest.importorskip("segment_anything")


def test_quick_mode_reports_the_table(tmp_path, capsys):
    out = tmp_path / "sam.json"
    assert bench.main(["--quick", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    (row,) = r["results"]
    assert row["model_type"] == "vit_test" and row["family"] == "sam" and r["gemm"]["gflops"] > 0
    assert row["encoder_gflop"] > 0 and 0 < row["encoder_fraction_of_gemm"] and row["encoder_speedup_vs_baseline"] == 1
    for stage in ("encoder_ms", "decoder_ms"):
        ms = row[stage]
        assert ms["speedup_p50"] == pytest.approx(ms["pytorch"]["p50"] / ms["onnxruntime"]["p50"])
    assert "vit_test" in capsys.readouterr().out


def test_flops_of_vit_b_are_its_published_count():
    """ViT-B's encoder: 486.4 GMAC per 1024 x 1024 image as EfficientViT-SAM's paper counts it, 2 FLOP each."""
    import torch

    from pslg.export import sam as sam_export
    with torch.device("meta"):
        model = sam_export.build("vit_b")
    encoder = sam_export.graphs(model)[0]
    flops = bench.encoder_flops(encoder, 1024)
    assert flops / 2e9 == pytest.approx(486.4, rel=0.02)


def test_bad_arguments_are_named(capsys):
    assert bench.main(["--model-type", "vit_t", "--baseline", "vit_test", "--runs", "1"]) == ParameterError.code
    assert "unknown SAM model type 'vit_t'" in capsys.readouterr().err
