"""Text pipeline of chapter 1: normalisation, tokenisation, vocabulary, corpora, LM batching.

(``models.text.wordpiece``, ``models.text.bpe``, ``models.text.bpe_train``, ``models.text.sentencepiece`` and
``models.text.tokenizer_base`` are separate modules; import them directly.)
"""
from models.text.batching import (
    batchify,
    bucket_batches,
    get_batch,
    lm_windows,
    num_windows,
    pad_batch,
    sentence_batches,
)
from models.text.corpus import (
    atomic_write_bytes,
    atomic_write_text,
    load_corpus,
    load_default_corpus,
    load_text,
    train_valid_test_split,
)
from models.text.normalize import (
    char_tokenize,
    normalize,
    split_sentences,
    tokenize_sentences,
    word_tokenize,
)
from models.text.vocab import BOS, EOS, PAD, SPECIALS, UNK, Vocab

__all__ = [
    "normalize", "word_tokenize", "char_tokenize", "split_sentences", "tokenize_sentences",
    "Vocab", "SPECIALS", "PAD", "UNK", "BOS", "EOS",
    "load_default_corpus", "load_text", "load_corpus", "train_valid_test_split",
    "atomic_write_text", "atomic_write_bytes",
    "batchify", "get_batch", "num_windows", "lm_windows",
    "pad_batch", "bucket_batches", "sentence_batches",
]
