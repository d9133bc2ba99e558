"""``pslg export lqvg``: LQVG's text and grounding graphs and the tokenizer into a model set."""
from pathlib import Path

from . import text
from .export import DEFAULT_MAX_TOKENS, IMAGE_SIZES, export_lqvg


def add_arguments(parser):
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", type=Path, metavar="PATH",
                         help="official LQVG checkpoint (.pth from main.py; loaded safely and strictly)")
    weights.add_argument("--random-weights", action="store_true",
                         help="seeded random weights, for tests and latency only (the manifest says so)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-weights (default 0)")
    parser.add_argument("--tokenizer", type=Path, metavar="DIR",
                        help="folder with roberta-base's tokenizer.json, or its vocab.json + merges.txt "
                             "(needed with --checkpoint; without it, --random-weights uses a stand-in tokenizer)")
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZES[0], metavar="N",
                        help=f"letterbox square the checkpoint was trained at: {' or '.join(map(str, IMAGE_SIZES))} "
                             f"(default {IMAGE_SIZES[0]})")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N",
                        help=f"longest token sequence, <s> and </s> included; longer phrases are truncated at run "
                             f"time (default {DEFAULT_MAX_TOKENS}, at most {text.MAX_TOKENS})")
    parser.add_argument("--text-layers", type=int, default=text.LAYERS, metavar="N",
                        help=f"RoBERTa layers; fewer than {text.LAYERS} is a test configuration (random weights)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="model-set folder (created or updated)")
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxslim on the exported graphs")


def run(args):
    meta = export_lqvg(args.out, args.tokenizer, checkpoint=args.checkpoint, random_weights=args.random_weights,
                       seed=args.seed, image_size=args.image_size, max_tokens=args.max_tokens,
                       text_layers=args.text_layers, simplify=not args.no_simplify).lqvg
    print(f"wrote LQVG ({meta.image_size} px, up to {meta.max_tokens} tokens) to {args.out}; "
          f"ONNX Runtime vs PyTorch max abs diff: {meta.provenance.parity}")
    return 0
