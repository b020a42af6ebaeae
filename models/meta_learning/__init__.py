"""Chapter 5, meta-learning (§§ 5.1–5.2): learners that read a task's few labelled examples.

Every learner trains on episodes (``models.data.arsc``: N classes, K support and Q query examples
each) and classifies a new task's queries from its support set alone:

| learner | reads the support by | paper |
|---|---|---|
| ``InductionNetwork`` | dynamic routing into class vectors, a neural tensor relation | Geng et al. 2019 (the book's) |
| ``PrototypicalNetwork`` | class means, nearest by squared Euclidean distance | Snell et al. 2017 |
| ``MAML`` | a few gradient steps from meta-learned weights (second order) | Finn et al. 2017 |
| ``MiniLMPrototypical`` | class means of pretrained MiniLM sentence embeddings | chapter 4's BERT |

The first three share the book's encoder (``encoder.SentenceEncoder``: embeddings, BiLSTM,
self-attentive pooling); ``episodes`` turns episodes into arrays and evaluates fixed tasks;
``torch_port`` holds PyTorch ports for the tests and the benchmark. The recipe is
``python -m models fewshot-reviews``.
"""
from models.meta_learning.base import FewShotLearner, accuracy
from models.meta_learning.encoder import EncoderConfig, SentenceEncoder
from models.meta_learning.episodes import (EpisodeBatch, balanced_accuracy, encode_episode, evaluate_tasks,
                                          predict_tasks, summarize)
from models.meta_learning.induction import (DynamicRouting, InductionConfig, InductionNetwork, RelationModule,
                                            squash)
from models.meta_learning.maml import MAML, MAMLConfig, SentenceClassifier, parameters_replaced
from models.meta_learning.prototypical import (MiniLMPrototypical, MiniLMPrototypicalConfig, PrototypicalConfig,
                                               PrototypicalNetwork, negative_squared_distances, prototypes)

__all__ = ["FewShotLearner", "accuracy", "EncoderConfig", "SentenceEncoder", "EpisodeBatch", "encode_episode",
           "evaluate_tasks", "predict_tasks", "balanced_accuracy", "summarize", "DynamicRouting", "InductionConfig",
           "InductionNetwork", "RelationModule", "squash", "MAML", "MAMLConfig", "SentenceClassifier", "parameters_replaced",
           "MiniLMPrototypical", "MiniLMPrototypicalConfig", "PrototypicalConfig", "PrototypicalNetwork",
           "negative_squared_distances", "prototypes"]
