"""A small CLIP-compatible byte-level BPE tokenizer trained on catalog text.

The saved directory loads with ``CLIPTokenizer``/``AutoTokenizer``/``CLIPProcessor``
because the result *is* a ``transformers.CLIPTokenizer``, only with a small vocabulary:
the same normalisation (NFC, whitespace folding, lowercase), the same pre-tokenizer
regex and byte-level alphabet, and the same ``</w>`` end-of-word BPE as OpenAI's CLIP.
Every one of the 256 byte symbols (and its ``</w>`` form) is in the vocabulary, so any
text tokenizes; unknown words just split into more pieces.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import CLIPTokenizer

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
BOS_ID = 0
# Not 2: CLIPTextModel treats eos_token_id == 2 as a legacy config and pools at the
# highest token id instead of at the first EOS.
EOS_ID = 1
CONTEXT_LENGTH = 32

# Same split as transformers' CLIPTokenizer, so training sees what inference sees.
_SPLIT = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]"""
    r"""|[^\s\p{L}\p{N}]+"""
)


def _pretokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )


def _normalizer() -> normalizers.Normalizer:
    return normalizers.Sequence(
        [
            normalizers.NFC(),
            normalizers.Replace(Regex(r"\s+"), " "),
            normalizers.Lowercase(),
        ]
    )


def _learn_merges(texts: Iterable[str], vocab_size: int) -> list[tuple[str, str]]:
    """BPE merges learnt on ``texts`` with CLIP's normalisation and word splitting."""
    tok = Tokenizer(
        models.BPE(
            unk_token=EOS, end_of_word_suffix="</w>", continuing_subword_prefix=""
        )
    )
    tok.normalizer = _normalizer()
    tok.pre_tokenizer = _pretokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]


def build_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> CLIPTokenizer:
    """Train a ``CLIPTokenizer`` with at most ``vocab_size`` tokens on ``texts``."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    base = [BOS, EOS] + alphabet + [a + "</w>" for a in alphabet]
    budget = vocab_size - len(base)
    if budget < 0:
        raise ValueError(f"vocab_size must be at least {len(base)}")
    # Ask for extra merges: the trainer's own vocab lacks many '</w>' byte symbols
    # that we add explicitly, so its vocab_size is not ours.
    vocab = {tok: i for i, tok in enumerate(base)}
    merges: list[tuple[str, str]] = []
    for a, b in _learn_merges(texts, vocab_size + 256):
        if len(merges) >= budget:
            break
        if a in vocab and b in vocab and a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    assert vocab[BOS] == BOS_ID and vocab[EOS] == EOS_ID
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        model_max_length=CONTEXT_LENGTH,
        unk_token=EOS,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
    )
