"""Building blocks of our LQVG against independent references (transformers' RoBERTa, analytic sampling)."""
import pytest
import torch

from pslg.export.lqvg.backbone import Backbone, level_shapes
from pslg.export.lqvg.deformable import MSDeformAttn
from pslg.export.lqvg.position import sine_1d, sine_2d
from pslg.export.lqvg.text import RobertaEncoder


def test_level_shapes_of_both_image_sizes():
    assert level_shapes(800) == ((100, 100), (50, 50), (25, 25), (13, 13))
    assert level_shapes(1024) == ((128, 128), (64, 64), (32, 32), (16, 16))
    assert sum(h * w for h, w in level_shapes(800)) == 13294
    assert sum(h * w for h, w in level_shapes(1024)) == 21760


def test_level_shapes_match_the_backbone():
    with torch.no_grad():
        feats = Backbone().eval()(torch.zeros(1, 3, 200, 200))
    assert [tuple(f.shape[-2:]) for f in feats] == list(level_shapes(200)[:3])


def test_roberta_matches_transformers():
    transformers = pytest.importorskip("transformers")
    config = transformers.RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
                                        layer_norm_eps=1e-5, num_hidden_layers=2, pad_token_id=1)
    torch.manual_seed(0)
    ours = RobertaEncoder(layers=2).eval()
    theirs = transformers.RobertaModel(config, add_pooling_layer=True).eval()
    missing, unexpected = theirs.load_state_dict(ours.state_dict(), strict=False)
    assert not missing and not unexpected
    ids = torch.tensor([[0, 627, 2496, 3907, 15, 5, 235, 2, 1, 1]])
    mask = (ids != 1).long()
    with torch.no_grad():
        got = ours(ids, mask)
        want = theirs(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(got[mask.bool()], want[mask.bool()], atol=1e-5)


def test_deformable_sampling_is_bilinear_with_zero_padding():
    """align_corners=False: pixel (i, j) of an H x W level has its centre at ((j + .5) / W, (i + .5) / H)."""
    shapes = ((2, 4), (1, 2))
    value = torch.arange(10, dtype=torch.float32).view(1, 10, 1, 1)  # level 0: 0..7 (2 x 4), level 1: 8, 9
    locations = torch.tensor([[1.5 / 4, 0.5 / 2], [0.5 / 2, 0.5]])  # per level: centre of (0, 1); centre of (0, 0)
    between = torch.tensor([[2.0 / 4, 1.0 / 2], [1.0, 0.5]])  # level 0: mean of 1, 2, 5, 6; level 1: 9 and padding
    outside = torch.tensor([[-1.0, -1.0], [2.0, 2.0]])
    loc = torch.stack([locations, between, outside]).view(1, 3, 1, 2, 1, 2)
    weights = torch.ones(1, 3, 1, 2, 1)
    out = MSDeformAttn(shapes, d_model=1, n_heads=1, n_points=1).sample(value, loc, weights)
    assert out.shape == (1, 3, 1)
    assert out[0, :, 0].tolist() == pytest.approx([1 + 8, 3.5 + 4.5, 0.0])


def test_position_embeddings():
    pos = sine_2d(3, 5, num_feats=8)
    assert pos.shape == (1, 16, 3, 5)
    y0 = 0.5 / (3 + 1e-6) * 2 * torch.pi  # first row, ReferFormer's -0.5
    assert pos[0, 0, 0, 0].item() == pytest.approx(torch.sin(torch.tensor(y0)).item(), abs=1e-6)
    assert pos[0, 1, 0, 0].item() == pytest.approx(torch.cos(torch.tensor(y0)).item(), abs=1e-6)
    text = sine_1d(torch.tensor([[1.0, 1.0, 0.0]]), num_feats=4)
    assert text.shape == (1, 3, 4)
    second = torch.tensor(2 / (2 + 1e-6) * 2 * torch.pi)  # cumsum 2 of 2 valid tokens, normalised
    assert text[0, 1, 0].item() == pytest.approx(torch.sin(second).item(), abs=1e-6)
