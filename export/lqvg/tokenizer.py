"""roberta-base's tokenizer from a folder, checked and turned into one ``tokenizer.json``.

The folder holds either HF's ``tokenizer.json`` or the original
``vocab.json`` + ``merges.txt`` (then the tokenizer is assembled as
``RobertaTokenizerFast`` does: byte-level BPE, ``<mask>`` stripping left
spaces, a RobertaProcessing post-processor adding ``<s>`` ... ``</s>``). The
model set then needs only the ``tokenizers`` package at run time.
"""
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

from pslg.runtime.errors import TokenizerError

from .text import VOCAB_SIZE

#: roberta-base's special tokens and their ids, which LQVG's RoBERTa relies on.
SPECIAL_TOKENS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
MASK_TOKEN = "<mask>"


def _from_vocab_merges(vocab, merges):
    try:
        bpe = BPE.from_file(str(vocab), str(merges), dropout=None, continuing_subword_prefix="",
                            end_of_word_suffix="", fuse_unk=False)
    except Exception as e:  # tokenizers raises plain Exceptions for unreadable files
        raise TokenizerError(f"cannot read {vocab.name} + {merges.name} as a BPE vocabulary: {e}") from None
    return _roberta_shaped(bpe)


def standin_tokenizer():
    """A byte-level tokenizer with RoBERTa's special tokens and no merges, for random-weights model sets.

    It is not roberta-base's vocabulary: it only lets a random-weights set
    (tests, latency work, the demo without checkpoints) run end to end.
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {**SPECIAL_TOKENS, **{c: len(SPECIAL_TOKENS) + i for i, c in enumerate(alphabet)}}
    vocab[MASK_TOKEN] = len(vocab)
    return _roberta_shaped(BPE(vocab, [], continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))


def _roberta_shaped(bpe):
    """Byte-level pre-tokenizer and decoder, RoBERTa's special tokens and ``<s> ... </s>`` post-processor."""
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True) for t in SPECIAL_TOKENS]
                           + [AddedToken(MASK_TOKEN, lstrip=True, special=True)])
    tok.post_processor = processors.RobertaProcessing(("</s>", SPECIAL_TOKENS["</s>"]), ("<s>", SPECIAL_TOKENS["<s>"]),
                                                      trim_offsets=True, add_prefix_space=False)
    return tok


def check_roberta(tok, where):
    """Refuse a tokenizer whose ids would not mean what LQVG's RoBERTa was trained on."""
    wrong = {t: tok.token_to_id(t) for t, i in SPECIAL_TOKENS.items() if tok.token_to_id(t) != i}
    if wrong or tok.token_to_id(MASK_TOKEN) is None:
        raise TokenizerError(
            f"{where} is not roberta-base's tokenizer: special tokens must be {SPECIAL_TOKENS} plus {MASK_TOKEN}, "
            f"got {wrong or {MASK_TOKEN: None}}")
    if tok.get_vocab_size() > VOCAB_SIZE:
        raise TokenizerError(f"{where} has {tok.get_vocab_size()} tokens; RoBERTa's embedding has {VOCAB_SIZE}")
    ids = tok.encode("a").ids
    if not ids or ids[0] != SPECIAL_TOKENS["<s>"] or ids[-1] != SPECIAL_TOKENS["</s>"]:
        raise TokenizerError(f"{where} does not wrap a phrase in <s> ... </s> (got ids {ids}); "
                             f"it needs RoBERTa's post-processor")


def load_tokenizer(folder):
    """The RoBERTa tokenizer of ``folder`` (``tokenizer.json``, else ``vocab.json`` + ``merges.txt``), checked."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TokenizerError(f"tokenizer folder {folder} does not exist")
    if (folder / "tokenizer.json").is_file():
        try:
            tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as e:  # tokenizers raises plain Exceptions for malformed files
            raise TokenizerError(f"{folder / 'tokenizer.json'} is not a tokenizers file: {e}") from None
        where = folder / "tokenizer.json"
    elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        tok = _from_vocab_merges(folder / "vocab.json", folder / "merges.txt")
        where = folder / "vocab.json"
    else:
        raise TokenizerError(f"{folder} holds neither tokenizer.json nor vocab.json + merges.txt "
                             f"(the files of roberta-base's tokenizer)")
    check_roberta(tok, where)
    tok.no_truncation()
    tok.no_padding()
    return tok
