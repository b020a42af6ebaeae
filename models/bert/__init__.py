"""BERT (book ch. 4) in minigrad, with Hugging Face's names: one checkpoint opens in both.

    from models.bert import BertConfig, BertModel, BertForPreTraining
    model = BertModel.from_pretrained("path/to/all-MiniLM-L6-v2")
    out = model(input_ids, attention_mask=mask)          # out.last_hidden_state (B, T, H)

Modules: ``config`` (BertConfig, parameter shapes without allocation), ``modeling`` (embeddings,
encoder, pooler, BertModel), ``heads`` (pre-training and fine-tuning heads), ``hf_io``
(``from_pretrained`` / ``save_pretrained``). Pre-training data and loop: ``models.bert_pretraining``.
"""
from models.bert.config import BertConfig, backbone_shapes, count_parameters, head_shapes
from models.bert.heads import (
    IGNORE_INDEX,
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    masked_lm_loss,
)
from models.bert.modeling import BertModel, BertPreTrainedModel, ModelOutput, l2_normalize, mean_pooling

__all__ = [
    "BertConfig", "backbone_shapes", "head_shapes", "count_parameters",
    "BertPreTrainedModel", "BertModel", "BertForPreTraining", "BertForMaskedLM",
    "BertForSequenceClassification", "BertForQuestionAnswering", "ModelOutput",
    "masked_lm_loss", "IGNORE_INDEX", "mean_pooling", "l2_normalize",
]
