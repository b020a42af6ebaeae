"""GPT (book § 4.3) and GPT-2 (§ 5.3) in minigrad, with Hugging Face's names: one checkpoint opens in both.

    from models.gpt import GPT2Config, GPT2LMHeadModel
    model = GPT2LMHeadModel.from_pretrained("path/to/gpt2")          # HF's config.json + model.safetensors
    out = model(input_ids, attention_mask=mask, labels=input_ids)    # out.logits (B, T, V), out.loss
    ids = model.generate(input_ids, max_new_tokens=40, do_sample=True, top_p=0.9, top_k=0)

Modules: ``config`` (GPT2Config, OpenAIGPTConfig, parameter shapes without allocation), ``modeling``
(the shared block and decoder, the two families' classes), ``checkpoint`` (``from_pretrained`` /
``save_pretrained``). Decoding: ``models.generation``. Tokenizer: ``models.text.bpe.GPT2Tokenizer``.
"""
from models.gpt.config import DecoderConfig, GPT2Config, OpenAIGPTConfig, count_parameters, parameter_shapes
from models.gpt.modeling import (
    IGNORE_INDEX,
    Block,
    CausalLM,
    CausalSelfAttention,
    Conv1D,
    DecoderStack,
    GPT2LMHeadModel,
    GPT2Model,
    GPTPreTrainedModel,
    MLP,
    OpenAIGPTLMHeadModel,
    OpenAIGPTModel,
    causal_lm_loss,
)

__all__ = ["DecoderConfig", "GPT2Config", "OpenAIGPTConfig", "count_parameters", "parameter_shapes",
           "Conv1D", "CausalSelfAttention", "MLP", "Block", "GPTPreTrainedModel", "DecoderStack", "GPT2Model",
           "OpenAIGPTModel", "CausalLM", "GPT2LMHeadModel", "OpenAIGPTLMHeadModel", "causal_lm_loss",
           "IGNORE_INDEX"]
