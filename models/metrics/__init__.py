"""Evaluation metrics of the book: BLEU (ch. 3), perplexity (ch. 1-3), GLUE metrics and SQuAD EM/F1
(ch. 4). Pure Python/NumPy; each one is tested against its reference library (sacrebleu, NLTK,
scikit-learn, SciPy) or the official evaluation script's rules."""
from models.metrics.bleu import (
    BLEUScore,
    BLEUStats,
    brevity_penalty,
    closest_ref_length,
    corpus_bleu,
    corpus_stats,
    bleu_from_stats,
    ngram_counts,
    references_from_streams,
    sentence_bleu,
    sentence_stats,
    tokenize_13a,
)
from models.metrics.classification import (
    accuracy,
    average_ranks,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    pearson,
    perplexity,
    precision_recall_f1,
    spearman,
)
from models.metrics.squad import exact_match, normalize_answer, squad_evaluate, token_f1

__all__ = [
    "BLEUScore", "BLEUStats", "bleu_from_stats", "brevity_penalty", "closest_ref_length",
    "corpus_bleu", "corpus_stats", "ngram_counts", "references_from_streams", "sentence_bleu",
    "sentence_stats", "tokenize_13a",
    "accuracy", "average_ranks", "confusion_matrix", "f1_score", "matthews_corrcoef", "pearson",
    "perplexity", "precision_recall_f1", "spearman",
    "exact_match", "normalize_answer", "squad_evaluate", "token_f1",
]
