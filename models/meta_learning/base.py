"""What every episodic learner of the package provides, so one training loop and one evaluation
serve them all (book § 5.2: a batch is a support set and a query set; the model predicts the
query labels from the support).

    loss, metrics = learner.episode_loss(batch)           # training: the mean loss over the queries
    state = learner.read_support(support, labels, n_way)  # evaluation: read a task's support once ...
    scores = learner.score_queries(state, queries)        # ... then score its queries (Q, N), any chunk

``save_pretrained(dir)`` writes ``config.json`` (the config dataclass and the learner's name) and
``model.safetensors``; ``from_pretrained(dir)`` builds the learner from them and loads the weights
with shape checks, like the BERT package.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import minigrad
from minigrad.nn import Module
from models.text.corpus import atomic_write_text


def accuracy(scores, labels) -> float:
    """Share of rows whose highest score is at their label."""
    scores = scores.data if isinstance(scores, minigrad.Tensor) else np.asarray(scores)
    return float((scores.argmax(axis=1) == np.asarray(labels)).mean())


class FewShotLearner(Module):
    """Base of the learners: subclasses set ``config_class`` and implement the three methods."""

    config_class = None

    def episode_loss(self, batch):  # pragma: no cover - abstract
        raise NotImplementedError

    def read_support(self, support, labels, n_way: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def score_queries(self, state, query) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def save_pretrained(self, directory) -> None:
        """``config.json`` + ``model.safetensors`` in ``directory`` (both written atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"learner": type(self).__name__, **self.config.to_dict()}
        atomic_write_text(directory / "config.json", json.dumps(config, indent=2) + "\n")
        minigrad.save(self.state_dict(), directory / "model.safetensors")

    @classmethod
    def from_pretrained(cls, directory, **kwargs):
        """The learner saved by ``save_pretrained`` in ``directory``."""
        directory = Path(directory)
        path = directory / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{cls.__name__}.from_pretrained: no config.json in {directory}")
        values = json.loads(path.read_text(encoding="utf-8"))
        saved_as = values.pop("learner", None)
        if saved_as != cls.__name__:
            raise ValueError(f"{cls.__name__}.from_pretrained: {directory} holds a {saved_as!r}, not a {cls.__name__}")
        model = cls(cls.config_class.from_dict(values), **kwargs)
        model.load_state_dict(minigrad.load(directory / "model.safetensors"))
        return model
