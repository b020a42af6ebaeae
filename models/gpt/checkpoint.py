"""Reading and writing Hugging Face GPT / GPT-2 checkpoints (``config.json`` + ``model.safetensors``).

Names are HF's. A model with its LM head stores the decoder under ``transformer.``
(``transformer.h.0.attn.c_attn.weight``); a bare ``GPT2Model`` — and OpenAI's original ``gpt2``
upload — has no prefix (``h.0.attn.c_attn.weight``). Loading follows HF's rules:

* the ``transformer.`` prefix is added or removed as the target class needs;
* the tied ``lm_head.weight`` may be absent (it *is* the token-embedding matrix), and the old
  attention buffers (``attn.bias``, ``attn.masked_bias``: a stored causal mask) are skipped;
* anything else — a missing tensor, an unknown name, a shape that does not match the config — is
  one error listing every problem, raised before any model is built.
"""
from __future__ import annotations

from models.gpt.config import CONFIG_CLASSES, DecoderConfig, parameter_shapes
from models.hf_checkpoint import checkpoint_folder, load_matching, read_config, read_weights, write_checkpoint

DECODER_ROOTS = ("wte", "wpe", "h", "ln_f", "tokens_embed", "positions_embed", "drop")
BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias", "position_ids")  # HF buffers: masks and arange, not weights
LM_HEAD = "lm_head.weight"


def read_checkpoint_config(cls, directory) -> DecoderConfig:
    """The checkpoint's config as ``cls.config_class``; a checkpoint of another model type is refused."""
    owner = f"{cls.__name__}.from_pretrained"
    values = read_config(directory, owner)
    expected = cls.config_class.model_type
    if values.get("model_type", expected) != expected:
        other = CONFIG_CLASSES.get(values["model_type"])
        hint = f" (load it with the {other.__name__.replace('Config', '')} classes)" if other else ""
        raise ValueError(f"{owner}: {str(directory)!r} holds a {values['model_type']!r} model, expected "
                         f"{expected!r}{hint}")
    return values


def normalise_names(state: dict, with_lm_head: bool) -> dict:
    """The ``transformer.`` prefix added (LM-head classes) or removed (bare decoders)."""
    out = {}
    for name, array in state.items():
        root = name.split(".", 1)[0]
        if with_lm_head and root in DECODER_ROOTS:
            name = "transformer." + name
        elif not with_lm_head and root == "transformer":
            name = name[len("transformer."):]
        out[name] = array
    return out


def load_pretrained(cls, directory, dtype=None, **config_overrides):
    """``cls.from_pretrained(directory)``: build ``cls`` from ``config.json`` and load the weights."""
    owner = f"{cls.__name__}.from_pretrained"
    directory = checkpoint_folder(directory, owner)
    config = cls.config_class.from_dict(read_checkpoint_config(cls, directory), **config_overrides)
    state = normalise_names(read_weights(directory, owner), cls.has_lm_head)
    expected = parameter_shapes(config, lm_head=cls.has_lm_head)

    def skippable(name: str) -> bool:  # buffers, and the LM head when the target is a bare decoder or tied
        return name.endswith(BUFFER_SUFFIXES) or (name == LM_HEAD and LM_HEAD not in expected)

    summary = (f"vocab_size={config.vocab_size}, n_positions={config.n_positions}, n_embd={config.n_embd}, "
               f"n_layer={config.n_layer}, n_inner={config.inner_size}")
    return load_matching(cls, config, state, expected, owner, summary, dtype=dtype, skippable=skippable)


def save_pretrained(model, directory) -> None:
    """Write ``model.safetensors`` (without the tied ``lm_head.weight``, as HF) and ``config.json``."""
    state = model.state_dict()
    if model.config.tie_word_embeddings:
        state.pop(LM_HEAD, None)
    config = model.config.to_dict()
    config.update(architectures=[type(model).__name__], dtype=str(next(iter(state.values())).dtype))
    write_checkpoint(directory, state, config)
