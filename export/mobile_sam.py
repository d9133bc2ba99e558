"""The MobileSAM family: TinyViT-5M image encoder with SAM's prompt encoder and mask decoder.

The model is built by ``mobilesam-mirror`` (a packaging of MobileSAM's own
code, Apache-2.0; the project itself publishes no package), so the official
``mobile_sam.pt`` (a plain state dict) loads key for key and the reference
predictor is MobileSAM's own. Its prompt encoder, mask decoder and
``SamPredictor`` are segment-anything's code (only comments differ), so the
graphs and the runtime rules are the SAM family's: longest side resized and
padded, points then box, mask token 0.

TinyViT caches its attention biases (``Attention.ab``) when switched to eval
mode; :func:`pslg.export.sam.load_sam` calls ``eval()`` after loading, as
MobileSAM's README does, or the graph would keep the initial biases.
"""
import warnings

from pslg.runtime import extras

from . import sam

graphs = sam.graphs
rules = sam.rules


def _mobile_sam():
    with warnings.catch_warnings():  # timm warns that TinyViT's model names are registered twice
        warnings.simplefilter("ignore")
        return extras.require("mobile_sam", "export", "MobileSAM export")


def build(model_type):
    """An untrained MobileSAM (``mobile_sam.build_sam_vit_t``)."""
    return _mobile_sam().build_sam_vit_t(checkpoint=None).eval()


def predictor(model):
    return _mobile_sam().SamPredictor(model)
