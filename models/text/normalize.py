"""Text preprocessing for chapter 1: normalisation, tokenisation, sentence splitting.

A language model assigns probabilities to token sequences, so the first step of the book's
N-gram pipeline is to decide what a *token* is:

1. ``normalize``        — Unicode NFKC, optional lower-casing, control characters dropped,
                          whitespace collapsed (the same text always gives the same tokens);
2. ``split_sentences``  — sentence boundaries, so ``<s>``/``</s>`` can be added per sentence;
3. ``word_tokenize`` / ``char_tokenize`` — word- or character-level tokens.

``tokenize_sentences`` chains the three steps.
"""
from __future__ import annotations

import re
import unicodedata

__all__ = [
    "normalize",
    "word_tokenize",
    "char_tokenize",
    "split_sentences",
    "tokenize_sentences",
]

# Words keep internal apostrophes ("don't", "we'll", "know't"); any other non-space character
# is a token of its own, except that a run of one repeated symbol is one token ("...", "**",
# "-----" heading underlines), so decorations do not flood the counts.
_WORD_RE = re.compile(r"\w+(?:['\u2019]\w+)*|([^\w\s])\1*")

# A sentence ends at . ! ? (possibly repeated, possibly followed by closing quotes or
# brackets) before whitespace, or at a blank line (paragraphs, code blocks, headings).
_BOUNDARY_RE = re.compile(r"(?<=[.!?])([\"'\u2019\u201d)\]]*)\s+|\n\s*\n")

# A final "." after one of these is an abbreviation, not the end of a sentence.
_ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf mr mrs ms dr st prof no fig sec approx resp".split()
)

_TOKEN_LEVELS = ("word", "char")


def _check_str(name: str, text: object) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{name}: expected text of type str, got {type(text).__name__}")


def _drop_control(text: str) -> str:
    """Drop control (Cc) and format (Cf, e.g. zero-width space) characters, keep whitespace."""
    return "".join(
        ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf")
    )


def normalize(
    text: str,
    *,
    lowercase: bool = True,
    form: str = "NFKC",
    collapse_whitespace: bool = True,
    keep_newlines: bool = False,
) -> str:
    """Normalise raw text so that equal-looking text gives equal tokens.

    Steps: Unicode normal form ``form`` (NFKC folds compatibility characters such as
    full-width letters, ligatures "ﬁ" and non-breaking spaces), drop control/format characters,
    lower-case (``lowercase=True``), normalise again (lower-casing can create new
    decomposable sequences), then collapse every run of whitespace into one space
    (or, with ``keep_newlines=True``, keep line structure: spaces collapse within a line and
    runs of blank lines collapse into one blank line).

    The result is a fixed point: ``normalize(normalize(t)) == normalize(t)``.
    """
    _check_str("normalize", text)
    if form not in ("NFC", "NFKC", "NFD", "NFKD"):
        raise ValueError(f"normalize: form must be one of NFC, NFKC, NFD, NFKD, got {form!r}")
    out = _drop_control(unicodedata.normalize(form, text))
    if lowercase:
        out = unicodedata.normalize(form, out.lower())
    if not collapse_whitespace:
        return out
    if not keep_newlines:
        return " ".join(out.split())
    lines = [" ".join(line.split()) for line in out.splitlines()]
    # runs of empty lines -> one empty line, no leading/trailing empty lines
    text_out = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text_out).strip("\n")


def word_tokenize(text: str) -> list[str]:
    """Word-level tokens: runs of word characters (with inner apostrophes), and each
    punctuation/symbol character (or run of the same one) on its own:
    ``"Don't panic, world!" -> ["Don't", "panic", ",", "world", "!"]``."""
    _check_str("word_tokenize", text)
    return [m.group(0) for m in _WORD_RE.finditer(text)]


def char_tokenize(text: str) -> list[str]:
    """Character-level tokens: one token per Unicode code point (spaces included)."""
    _check_str("char_tokenize", text)
    return list(text)


def _ends_with_abbreviation(chunk: str) -> bool:
    last = chunk.rsplit(None, 1)[-1] if chunk.strip() else ""
    return last.endswith(".") and last[:-1].lower().lstrip("(\"'") in _ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Split text into sentences at ``. ! ?`` + whitespace and at blank lines.

    A period after a common abbreviation ("e.g.", "Mr.") does not end a sentence. Empty
    pieces are dropped; each sentence has its inner whitespace collapsed.
    """
    _check_str("split_sentences", text)
    sentences: list[str] = []
    pending = ""
    start = 0
    for match in _BOUNDARY_RE.finditer(text):
        # group(1): closing quotes/brackets that belong to the sentence just ended
        piece = pending + text[start:match.start()] + (match.group(1) or "")
        start = match.end()
        at_blank_line = match.group(1) is None or match.group(0).count("\n") >= 2
        if not at_blank_line and _ends_with_abbreviation(piece):
            pending = piece + " "
            continue
        pending = ""
        sentence = " ".join(piece.split())
        if sentence:
            sentences.append(sentence)
    tail = " ".join((pending + text[start:]).split())
    if tail:
        sentences.append(tail)
    return sentences


def tokenize_sentences(
    text: str,
    *,
    level: str = "word",
    lowercase: bool = True,
) -> list[list[str]]:
    """Normalise, split into sentences and tokenise: ``text -> [[token, ...], ...]``.

    ``level="word"`` gives word tokens, ``level="char"`` character tokens (spaces kept, so a
    character LM can learn word boundaries). Sentences with no tokens are dropped.
    """
    _check_str("tokenize_sentences", text)
    if level not in _TOKEN_LEVELS:
        raise ValueError(f"tokenize_sentences: level must be one of {_TOKEN_LEVELS}, got {level!r}")
    tokenize = word_tokenize if level == "word" else char_tokenize
    clean = normalize(text, lowercase=lowercase, keep_newlines=True)
    out = [tokenize(sentence) for sentence in split_sentences(clean)]
    return [tokens for tokens in out if tokens]
