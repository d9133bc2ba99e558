"""Plain helpers of the LQVG tests (the cached, built-once material is in conftest.py's fixtures).

roberta-base's files cannot be downloaded here, so tests train a small
byte-level BPE with roberta's special tokens (``<s>``=0, ``<pad>``=1,
``</s>``=2, ``<unk>``=3, ``<mask>``) and its post-processor.
"""
import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "lqvg"
SPEC = FIXTURES / "lqvg_state_dict.tsv"
FIXTURE = FIXTURES / "fixture_seed7_osbs029.npz"
DATA = HERE.parent / "data"
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
CORPUS = [
    "the large white storage tank at the bottom left of the image",
    "a vehicle parked next to the tennis court on the right",
    "the airplane in the middle of the airport apron",
    "two ships docked at the harbour, near the bridge",
    "a baseball field surrounded by trees at the top",
    "the expressway toll station on the upper side",
] * 4


def make_tokenizer(folder, layout="tokenizer.json"):
    """Write a small RoBERTa-shaped tokenizer: ``layout`` is "tokenizer.json" or "vocab+merges"."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors, trainers
    from tokenizers.models import BPE
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    if layout == "tokenizer.json":
        tok.save(str(folder / "tokenizer.json"))
    else:
        tok.model.save(str(folder))
    return folder


def save_legacy_checkpoint(state, path):
    """A checkpoint as the official ``main.py`` writes it (legacy pickle, training args as a Namespace)."""
    import torch
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
                "lr_scheduler": {"step_size": 40, "gamma": 0.1, "last_epoch": 69}, "epoch": 69,
                "args": argparse.Namespace(backbone="resnet50", num_queries=10, with_box_refine=True, lr=1e-4)},
               str(path), _use_new_zipfile_serialization=False)
    return path


def export_cli(*argv):
    """``pslg export lqvg ARGV`` through the sub-command's own parser."""
    from pslg.export.lqvg import cli
    parser = argparse.ArgumentParser(prog="pslg export lqvg")
    cli.add_arguments(parser)
    return cli.run(parser.parse_args([str(a) for a in argv]))


def manifest(path):
    return json.loads((Path(path) / "manifest.json").read_text())
