"""The CPU variant's fused attention: what it fuses, what it leaves alone, and that the graph stays exact."""
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from pslg.export import onnx as onnx_tools
from pslg.export.exporter import GraphExport, export_component
from pslg.export.fused_attention import onnxruntime_attention
from pslg.runtime import modelset
from pslg.runtime.errors import ExportError
from pslg.runtime.modelset import Provenance, SamComponent
from pslg.runtime.specs import TensorSpec

TOKENS = TensorSpec("tokens", "float32", (1, 50, 32))
OUT = TensorSpec("out", "float32", (1, 50, 32))


class Attention(torch.nn.Module):
    """Self-attention with 4 heads over [1, S, 32] tokens, through ``F.scaled_dot_product_attention``;
    ``pooled``: queries over every other token (as Hiera's q-pooling blocks); ``masked``: with a mask."""

    def __init__(self, pooled=False, masked=False):
        super().__init__()
        self.qkv, self.proj = torch.nn.Linear(32, 96), torch.nn.Linear(32, 32)
        self.pooled, self.masked = pooled, masked

    def forward(self, x):
        q, k, v = self.qkv(x).reshape(1, -1, 3, 4, 8).permute(2, 0, 3, 1, 4)
        if self.pooled:
            q = q[:, :, ::2]
        mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool).tril() if self.masked else None
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(1, -1, 32)
        return self.proj(y)


def ops(path):
    return [(n.domain, n.op_type) for n in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize("pooled", [False, True], ids=["self", "pooled queries"])
def test_plain_attention_becomes_one_fused_node_with_the_same_outputs(tmp_path, pooled):
    torch.manual_seed(0)
    module = Attention(pooled=pooled).eval()
    x = torch.randn(1, 50, 32)
    out = TensorSpec("out", "float32", (1, 25 if pooled else 50, 32))
    with onnxruntime_attention() as seen:
        onnx_tools.export_graph(module, (x,), tmp_path / "g.onnx", [TOKENS], [out])
    assert seen["calls"] == 1 and F.scaled_dot_product_attention is not None
    assert ops(tmp_path / "g.onnx").count(("com.microsoft", "MultiHeadAttention")) == 1
    assert not any(op == "Softmax" for _, op in ops(tmp_path / "g.onnx"))
    with torch.no_grad():
        ref = {"out": module(x).numpy()}
    diffs = onnx_tools.check_parity("g", tmp_path / "g.onnx", {"tokens": x.numpy()}, ref, {"out": 1e-5})
    assert diffs["out"] <= 1e-5


def test_masked_attention_and_everything_after_the_block_keep_the_portable_form(tmp_path):
    sdpa = F.scaled_dot_product_attention
    with onnxruntime_attention() as seen:
        onnx_tools.export_graph(Attention(masked=True).eval(), (torch.randn(1, 50, 32),), tmp_path / "g.onnx",
                                [TOKENS], [OUT])
    assert seen["calls"] == 0 and F.scaled_dot_product_attention is sdpa
    assert all(domain in ("", "ai.onnx") for domain, _ in ops(tmp_path / "g.onnx"))
    onnx_tools.export_graph(Attention().eval(), (torch.randn(1, 50, 32),), tmp_path / "plain.onnx", [TOKENS], [OUT])
    assert all(domain in ("", "ai.onnx") for domain, _ in ops(tmp_path / "plain.onnx"))


def component(provenance):
    return SamComponent("sam", "vit_test", 1024, 0.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), provenance)


def export(tmp_path, module):
    x = np.random.default_rng(0).standard_normal(TOKENS.shape, dtype=np.float32)
    graph = GraphExport("sam_encoder", module.eval(), (TOKENS,), (OUT,), [{"tokens": x}], {"out": 1e-5},
                        cpu_variant=True)
    return export_component(tmp_path / "set", "sam", [graph], component, weights={"random": True, "seed": 0})


def test_the_exporter_writes_checks_and_records_the_cpu_variant(tmp_path):
    torch.manual_seed(0)
    models = export(tmp_path, Attention())
    spec = models.graph("sam_encoder")
    assert spec.cpu_path == tmp_path / "set" / "sam_encoder.cpu.onnx"
    assert ("com.microsoft", "MultiHeadAttention") in ops(spec.cpu_path)
    assert ("com.microsoft", "MultiHeadAttention") not in ops(spec.path)
    assert set(models.sam.provenance.parity) == {"sam_encoder", "sam_encoder.cpu"}


def test_a_cpu_variant_without_attention_to_fuse_is_refused(tmp_path):
    with pytest.raises(ExportError, match="sam_encoder: a CPU variant was asked for, but the graph has no attention"):
        export(tmp_path, torch.nn.Linear(32, 32))
    assert not Path(tmp_path / "set" / "manifest.json").exists()
