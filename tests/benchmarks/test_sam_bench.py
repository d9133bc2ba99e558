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
    assert set(row["encoder_linear_ms"]) == {"pytorch", "onnxruntime"}
    assert 0 < row["encoder_linear_ms"]["onnxruntime"] and 0 < row["encoder_linear_ms"]["pytorch"]
    printed = capsys.readouterr().out
    assert "vit_test" in printed and "linear ours ms" in printed


def test_flops_of_vit_b_are_its_published_count():
    """ViT-B's encoder: 486.4 GMAC per 1024 x 1024 image as EfficientViT-SAM's paper counts it, 2 FLOP each; its
    linear layers are 4 per block (qkv, proj, two MLP), on 25 windows of 14 x 14 tokens or, in the 4 global
    blocks, on 64 x 64 tokens."""
    import torch

    from pslg.export import sam as sam_export
    with torch.device("meta"):
        model = sam_export.build("vit_b")
    encoder = sam_export.graphs(model)[0]
    flops, shapes = bench.encoder_profile(encoder, 1024)
    assert flops / 2e9 == pytest.approx(486.4, rel=0.02)
    assert sum(shapes.values()) == 48
    assert {m for m, _, _ in shapes} == {25 * 14 * 14, 64 * 64}
    assert {(k, n) for _, k, n in shapes} == {(768, 2304), (768, 768), (768, 3072), (3072, 768)}
    linear = sum(2 * m * k * n * c for (m, k, n), c in shapes.items())
    assert 0.7 < linear / flops < 0.8     # the rest: attention's products, the patch embedding, the neck


def test_bad_arguments_are_named(capsys):
    assert bench.main(["--model-type", "vit_t", "--baseline", "vit_test", "--runs", "1"]) == ParameterError.code
    assert "unknown SAM model type 'vit_t'" in capsys.readouterr().err
