"""The tokenizer folder: both layouts give RoBERTa's ids; anything else is refused by name."""
import json

import pytest

from pslg.export.lqvg.tokenizer import load_tokenizer
from pslg.runtime.errors import TokenizerError
from pslg.runtime.grounding import caption
from tests import lqvg_support as support

PHRASES = ["The large white storage tank at the bottom left", "two ships docked, near the bridge!",
           "  an  AIRPLANE\tin the middle  "]


def test_both_layouts_give_the_same_ids_as_transformers(tmp_path):
    as_json = load_tokenizer(support.make_tokenizer(tmp_path / "json"))
    as_files = load_tokenizer(support.make_tokenizer(tmp_path / "files", layout="vocab+merges"))
    assert not (tmp_path / "files" / "tokenizer.json").exists()
    transformers = pytest.importorskip("transformers")
    reference = transformers.RobertaTokenizerFast.from_pretrained(str(tmp_path / "files"))
    for phrase in PHRASES:
        text = caption(phrase)
        want = reference(text)["input_ids"]
        assert want[0] == 0 and want[-1] == 2
        assert as_files.encode(text).ids == want
        assert as_json.encode(text).ids == want


def _bert_like(folder):
    from tokenizers import Tokenizer, models
    folder.mkdir()
    tok = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 4}, unk_token="[UNK]"))
    tok.save(str(folder / "tokenizer.json"))
    return folder


def _without_post_processor(folder):
    support.make_tokenizer(folder)
    data = json.loads((folder / "tokenizer.json").read_text())
    data["post_processor"] = None
    (folder / "tokenizer.json").write_text(json.dumps(data))
    return folder


def _malformed(folder):
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{not json")
    return folder


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "absent", "does not exist"),
    (lambda d: d, "holds neither tokenizer.json nor vocab.json"),
    (lambda d: _bert_like(d / "bert"), "is not roberta-base's tokenizer"),
    (lambda d: _without_post_processor(d / "raw"), "does not wrap a phrase in <s> ... </s>"),
    (lambda d: _malformed(d / "bad"), "is not a tokenizers file"),
])
def test_bad_tokenizer_folders_are_refused(tmp_path, make, message):
    with pytest.raises(TokenizerError, match=message.replace(".", r"\.")):
        load_tokenizer(make(tmp_path))


def test_standin_tokenizer_is_roberta_shaped_and_only_for_random_weights(tmp_path):
    from pslg.export.lqvg.export import export_lqvg
    from pslg.export.lqvg.tokenizer import check_roberta, standin_tokenizer
    tok = standin_tokenizer()
    check_roberta(tok, "stand-in")
    ids = tok.encode(caption("The white boat")).ids
    assert ids[0] == 0 and ids[-1] == 2 and len(ids) == len("the white boat") + 2
    assert tok.decode(ids[1:-1]) == "the white boat"
    with pytest.raises(TokenizerError, match="--tokenizer DIR"):
        export_lqvg(tmp_path, None, checkpoint=tmp_path / "lqvg.pth")
