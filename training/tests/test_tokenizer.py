"""Tests for the small CLIP tokenizer: it loads with transformers and never fails."""

from __future__ import annotations

from transformers import AutoTokenizer, CLIPTokenizer

from training.tokenizer import BOS_ID, CONTEXT_LENGTH, EOS_ID, build_tokenizer

CORPUS = [
    "Red striped mug, 350ml",
    "Blue polka dot sneakers with a cushioned sole. Ships within 2 business days.",
    "Vintage green checked handbag",
] * 20


def test_saved_tokenizer_round_trips_through_transformers(tmp_path):
    tokenizer = build_tokenizer(CORPUS, vocab_size=700)
    tokenizer.save_pretrained(tmp_path)
    for cls in (CLIPTokenizer, AutoTokenizer):
        loaded = cls.from_pretrained(tmp_path, local_files_only=True)
        assert isinstance(loaded, CLIPTokenizer)
        assert (
            loaded("Red STRIPED mug").input_ids
            == tokenizer("red striped mug").input_ids
        )
        assert len(loaded) == len(tokenizer) <= 700
        assert loaded.model_max_length == CONTEXT_LENGTH


def test_any_text_tokenizes_with_bos_eos_and_truncation():
    tokenizer = build_tokenizer(CORPUS, vocab_size=700)
    text = "Zyxqv ünïcödé café 😀 " + "supercalifragilistic " * 10
    ids = tokenizer(text, truncation=True).input_ids
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID and len(ids) == CONTEXT_LENGTH
    # The only EOS is the final one: no unknown-token fallbacks in the middle.
    assert EOS_ID not in ids[1:-1]
    short = tokenizer("zyxqv café").input_ids
    assert tokenizer.decode(short, skip_special_tokens=True) == "zyxqv café"


def test_frequent_words_are_single_tokens():
    tokenizer = build_tokenizer(CORPUS, vocab_size=700)
    assert len(tokenizer("striped").input_ids) == 3
