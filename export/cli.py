"""Export SAM or LQVG from PyTorch checkpoints to an ONNX model set, checked against PyTorch (needs [export])."""
import json

from pslg.runtime.errors import ParameterError
from pslg.runtime.files import output_dir

from .sam_families import MODEL_TYPES


def add_arguments(parser):
    sub = parser.add_subparsers(dest="what", metavar="{sam,lqvg}", required=True)
    sam = sub.add_parser("sam", help="SAM image encoder + prompt/mask decoder (SAM, MobileSAM, SAM 2/2.1)")
    sam.add_argument("--model-type", default="vit_b", choices=tuple(MODEL_TYPES), metavar="TYPE",
                     help="model type as its project names it: " + ", ".join(MODEL_TYPES)
                     + " (vit_test: a small test configuration, no official weights)")
    sam.add_argument("--checkpoint", help="the family's official checkpoint (sam_vit_*.pth, mobile_sam.pt, "
                     "sam2.1_hiera_*.pt), or a fully fine-tuned state dict of the same layout")
    sam.add_argument("--decoder-checkpoint", help="fine-tuned mask-decoder state dict applied on top of --checkpoint")
    sam.add_argument("--random-weights", action="store_true", help="seeded random weights (tests/latency only)")
    sam.add_argument("--seed", type=int, default=0, help="seed for --random-weights")
    sam.add_argument("--out", required=True, help="model-set folder (created or updated)")
    sam.add_argument("--no-simplify", action="store_true", help="skip the onnxslim pass")
    sam.add_argument("--no-cpu-variant", action="store_true",
                     help="skip the encoder's CPU variant with fused attention (SAM 2: a set for TensorRT only, "
                     "half the disk)")
    from .lqvg import cli as lqvg_cli
    lqvg_cli.add_arguments(sub.add_parser("lqvg", help="LQVG grounding model (text graph + grounding graph)"))


def run(args):
    output_dir(args.out, create=False)  # an unwritable model-set folder is refused before any weights are read
    if args.what == "lqvg":
        from .lqvg import cli as lqvg_cli
        return lqvg_cli.run(args)
    from .sam import export_sam
    if args.seed < 0:
        raise ParameterError("--seed must be >= 0")
    models = export_sam(args.out, args.model_type, checkpoint=args.checkpoint,
                        decoder_checkpoint=args.decoder_checkpoint, random_weights=args.random_weights,
                        seed=args.seed, simplify=not args.no_simplify, cpu_variant=not args.no_cpu_variant)
    print(json.dumps({"out": str(args.out), "sam": models.sam.provenance.parity}, indent=2))
    return 0
