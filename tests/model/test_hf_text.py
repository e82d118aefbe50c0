"""The Hugging Face text backend, on a tiny randomly initialised encoder written to a temp dir."""

import pytest
import torch

from xmr_core.model.dual import DualEncoder


@pytest.fixture(scope="module")
def tiny_hf_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("tiny-bert")
    chars = sorted(set("abcdefghijklmnopqrstuvwxyzáéíóúüñ猫狗书水火"))
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(d)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(d)
    return d


def test_hf_backend_encodes_and_is_partially_frozen(tiny_hf_dir):
    model = DualEncoder({"embed_dim": 16, "text": {"backend": "hf", "hf_path": str(tiny_hf_dir)},
                         "vision": {"backbone": "mobilenetv3_small_050"}})
    t = model.encode_text(["gato", "猫", "cat"])
    assert t.shape == (3, 16) and torch.allclose(t.norm(dim=1), torch.ones(3), atol=1e-5)
    enc = model.text.encoder
    assert not enc.embeddings.word_embeddings.weight.requires_grad
    assert not any(p.requires_grad for p in enc.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in enc.encoder.layer[1].parameters())
    t.sum().backward()
    assert model.text.head.weight.grad is not None


def test_hf_backend_refuses_non_local_names():
    with pytest.raises(ValueError, match="local model directory"):
        DualEncoder({"text": {"backend": "hf", "hf_path": "xlm-roberta-base"}})
