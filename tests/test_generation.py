"""models.generation against Hugging Face's ``generate`` on the same weights: greedy and beam search
token for token (num_beams 1–4, length_penalty, early_stopping, eos, batched left-padded prompts,
with and without the cache); for sampling, the distribution after repetition penalty / temperature /
top-k / top-p equals HF's logits processors on the same logits, and a seeded run is reproducible."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import minigrad
from models.generation import GenerationOptions, process_scores, top_k_filter, top_p_filter
from models.gpt import GPT2Config, GPT2LMHeadModel, OpenAIGPTLMHeadModel

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

VOCAB = 71
SMALL = dict(vocab_size=VOCAB, n_positions=40, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
             attn_pdrop=0.0)
PAD = 0


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(ours, HF) GPT-2 on the same random weights, in float64 so that no near-tie of two logits can
    make the libraries choose differently (both round the logits to float32 before choosing, as HF)."""
    path = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    ref = transformers.GPT2LMHeadModel(transformers.GPT2Config(**SMALL, bos_token_id=1, eos_token_id=2)).eval()
    with torch.no_grad():  # larger weights: peakier distributions, so beams differ and end at different times
        for p in ref.parameters():
            p.mul_(6.0 if p.ndim == 2 else 1.0)
    ref.save_pretrained(path)
    return GPT2LMHeadModel.from_pretrained(path, dtype=np.float64), ref.double()


def prompts(seed: int = 0, B: int = 3, T: int = 7):
    """Left-padded prompts of T, T−2 and T−4 tokens."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, VOCAB, (B, T))
    lengths = np.array([T, T - 2, T - 4, T - 1][:B])
    mask = (np.arange(T)[None, ::-1] < lengths[:, None]).astype(np.int64)
    ids[mask == 0] = PAD
    return ids, mask


def hf_generate(ref, ids, mask, **options):
    with torch.no_grad():
        out = ref.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), do_sample=False,
                           pad_token_id=PAD, **options)
    return out.numpy()


def frequent_token(ours, ids, mask) -> int:
    """A token greedy decoding emits early (the third of the last prompt), to serve as eos: likely enough
    that some hypotheses end with it and the rows end at different times."""
    out = ours.generate(ids, attention_mask=mask, max_new_tokens=3, eos_token_id=[])
    return int(out[-1, -1])


def assert_same(ours, theirs):
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    assert np.array_equal(ours, theirs), f"ours\n{ours}\nHF\n{theirs}"


# ----------------------------------------------------------------------------------------------
# greedy and beam search, token for token
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_equals_hf_with_eos_and_left_padding(pair, use_cache):
    ours, ref = pair
    ids, mask = prompts()
    eos = frequent_token(ours, ids, mask)
    out = ours.generate(ids, attention_mask=mask, max_new_tokens=12, eos_token_id=eos, pad_token_id=PAD,
                        use_cache=use_cache)
    assert_same(out, hf_generate(ref, ids, mask, max_new_tokens=12, eos_token_id=eos))
    assert (out[:, ids.shape[1]:] == eos).any()  # the eos path was taken
    assert np.array_equal(out[:, :ids.shape[1]], ids)  # prompt + new ids


def test_greedy_with_repetition_penalty_equals_hf(pair):
    ours, ref = pair
    ids, mask = prompts(seed=1)
    for penalty in (1.3, 0.8):
        out = ours.generate(ids, attention_mask=mask, max_new_tokens=10, repetition_penalty=penalty, eos_token_id=[])
        theirs = hf_generate(ref, ids, mask, max_new_tokens=10, repetition_penalty=penalty, eos_token_id=None)
        assert_same(out, theirs)


@pytest.mark.parametrize("num_beams", [1, 2, 3, 4])
@pytest.mark.parametrize("early_stopping", [True, False, "never"])
def test_beam_search_equals_hf(pair, num_beams, early_stopping):
    ours, ref = pair
    ended = []
    for seed, B in ((2, 3), (5, 2)):
        ids, mask = prompts(seed=seed, B=B)
        eos = frequent_token(ours, ids, mask)
        for length_penalty in (1.0, 0.0, 2.0, -0.5):
            options = dict(max_new_tokens=12, num_beams=num_beams, length_penalty=length_penalty,
                           early_stopping=early_stopping, eos_token_id=eos)
            out = ours.generate(ids, attention_mask=mask, pad_token_id=PAD, **options)
            assert_same(out, hf_generate(ref, ids, mask, **options))
            ended.append((out[:, ids.shape[1]:] == eos).any())
    assert any(ended)  # some best hypotheses end with eos: the finished-beam path is compared too


def test_beam_search_stops_early_like_hf(pair):
    """Every prompt's beams finished before max_new_tokens: the output is shorter, padded as HF pads it."""
    ours, ref = pair
    ids, mask = prompts(seed=5, B=2)
    eos = frequent_token(ours, ids, mask)
    options = dict(max_new_tokens=12, num_beams=2, length_penalty=0.0, early_stopping=True, eos_token_id=eos)
    out = ours.generate(ids, attention_mask=mask, pad_token_id=PAD, **options)
    assert out.shape[1] < ids.shape[1] + 12
    assert_same(out, hf_generate(ref, ids, mask, **options))


def test_beam_search_returns_several_sequences_like_hf(pair):
    ours, ref = pair
    ids, mask = prompts(seed=3, B=2)
    eos = frequent_token(ours, ids, mask)
    options = dict(max_new_tokens=8, num_beams=4, num_return_sequences=3, eos_token_id=eos, repetition_penalty=1.2)
    out = ours.generate(ids, attention_mask=mask, pad_token_id=PAD, **options)
    assert out.shape[0] == 6
    assert_same(out, hf_generate(ref, ids, mask, **options))
    no_cache = ours.generate(ids, attention_mask=mask, pad_token_id=PAD, use_cache=False, **options)
    assert_same(no_cache, out)


def test_openai_gpt_greedy_and_beams_equal_hf(tmp_path):
    config = transformers.OpenAIGPTConfig(**SMALL)
    torch.manual_seed(1)
    ref = transformers.OpenAIGPTLMHeadModel(config).eval()
    ref.save_pretrained(tmp_path)
    ours = OpenAIGPTLMHeadModel.from_pretrained(tmp_path, dtype=np.float64)
    ref = ref.double()
    ids = np.random.default_rng(4).integers(3, VOCAB, (2, 6))
    mask = np.ones_like(ids)
    for num_beams in (1, 3):
        out = ours.generate(ids, max_new_tokens=8, num_beams=num_beams, eos_token_id=[], pad_token_id=PAD)
        assert_same(out, hf_generate(ref, ids, mask, max_new_tokens=8, num_beams=num_beams, eos_token_id=None))


# ----------------------------------------------------------------------------------------------
# sampling: the distribution HF samples from, and reproducible draws
# ----------------------------------------------------------------------------------------------
def hf_processors(input_ids, scores, temperature, top_k, top_p, penalty, min_keep, ignore=None):
    from transformers.generation import logits_process as lp

    procs = []
    if penalty != 1.0:
        procs.append(lp.RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=ignore))
    if temperature != 1.0:
        procs.append(lp.TemperatureLogitsWarper(temperature))
    if top_k:
        procs.append(lp.TopKLogitsWarper(top_k, min_tokens_to_keep=min_keep))
    if top_p < 1.0:
        procs.append(lp.TopPLogitsWarper(top_p, min_tokens_to_keep=min_keep))
    return lp.LogitsProcessorList(procs)(input_ids, scores)


@settings(max_examples=60)
@given(seed=st.integers(0, 2**31), V=st.integers(2, 60), N=st.integers(1, 4),
       temperature=st.sampled_from([1.0, 0.7, 1.6, 0.05]), top_k=st.sampled_from([0, 1, 3, 20, 200]),
       top_p=st.sampled_from([1.0, 0.9, 0.5, 0.05]), penalty=st.sampled_from([1.0, 1.2, 0.7]),
       beams=st.sampled_from([1, 3]), scale=st.sampled_from([1.0, 8.0]))
@example(seed=0, V=5, N=1, temperature=1.0, top_k=0, top_p=0.5, penalty=1.0, beams=1, scale=1.0)
def test_processed_distribution_equals_hf_logits_processors(seed, V, N, temperature, top_k, top_p, penalty, beams,
                                                           scale):
    rng = np.random.default_rng(seed)
    scores = (rng.standard_normal((N, V)) * scale).astype(np.float32)
    scores[:, rng.integers(0, V)] += 2.0  # a clear favourite now and then
    input_ids = rng.integers(0, V, (N, 5))
    ignore = rng.integers(0, 3, N)
    options = GenerationOptions(do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p,
                                repetition_penalty=penalty, num_beams=beams, eos_token_id=[0])
    ours = process_scores(scores.copy(), input_ids, options, ignore)
    theirs = hf_processors(torch.from_numpy(input_ids), torch.from_numpy(scores.copy()), temperature, top_k, top_p,
                           penalty, options.min_tokens_to_keep(), torch.from_numpy(ignore)).numpy()
    assert ours.dtype == np.float32
    assert np.array_equal(np.isneginf(ours), np.isneginf(theirs))  # the same tokens kept
    kept = ~np.isneginf(theirs)
    np.testing.assert_allclose(ours[kept], theirs[kept], rtol=1e-6, atol=1e-6)
    p_ours = np.exp(ours - ours.max(axis=1, keepdims=True))
    p_hf = torch.softmax(torch.from_numpy(theirs), -1).numpy()
    np.testing.assert_allclose(p_ours / p_ours.sum(axis=1, keepdims=True), p_hf, atol=1e-6)


def test_top_k_and_top_p_keep_the_right_sets():
    z = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], dtype=np.float32))
    assert np.isneginf(top_k_filter(z, 2)).tolist() == [[False, False, True, True]]
    assert np.isneginf(top_p_filter(z, 0.75)).tolist() == [[False, False, True, True]]  # 0.5 + 0.3 ≥ 0.75
    assert np.isneginf(top_p_filter(z, 0.4)).tolist() == [[False, True, True, True]]
    assert not np.isneginf(top_p_filter(z, 1.0)).any()


def test_sampling_is_seeded_and_follows_the_distribution(pair):
    ours, _ = pair
    ids = np.random.default_rng(5).integers(3, VOCAB, (1, 5))
    options = dict(max_new_tokens=6, do_sample=True, top_k=0, top_p=0.9, temperature=1.0, eos_token_id=[])
    a = ours.generate(ids, seed=7, **options)
    assert np.array_equal(a, ours.generate(ids, seed=7, **options))
    assert np.array_equal(a, ours.generate(ids, generator=minigrad.Generator(7), **options))
    assert not all(np.array_equal(a, ours.generate(ids, seed=s, **options)) for s in range(8, 12))
    minigrad.manual_seed(3)
    b = ours.generate(ids, **options)
    minigrad.manual_seed(3)
    assert np.array_equal(b, ours.generate(ids, **options))  # the global stream, reset
    # one step from 20,000 copies of the prompt (a float32 copy of the model: faster), frequencies match
    # the processed distribution
    single = GPT2LMHeadModel(ours.config, initialize=False)
    single.load_state_dict(ours.state_dict())
    many = np.repeat(ids, 20000, axis=0)
    drawn = single.generate(many, seed=0, **{**options, "max_new_tokens": 1})[:, -1]
    logits = single(ids).logits.data[0, -1]
    p = np.exp(top_p_filter(logits[None], 0.9)[0] - logits.max())
    p /= p.sum()
    freq = np.bincount(drawn, minlength=VOCAB) / len(drawn)
    assert freq[p == 0].sum() == 0  # nothing outside the nucleus
    assert 0.5 * np.abs(freq - p).sum() < 0.04  # total variation (≈ 0.02 expected from 20,000 draws)


def test_sampling_with_top_k_one_is_greedy(pair):
    ours, ref = pair
    ids, mask = prompts(seed=6)
    out = ours.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=True, top_k=1, seed=0, eos_token_id=[])
    assert_same(out, hf_generate(ref, ids, mask, max_new_tokens=8, eos_token_id=None))


def test_beam_sampling_is_seeded(pair):
    ours, _ = pair
    ids, mask = prompts(seed=7, B=2)
    options = dict(max_new_tokens=6, num_beams=3, do_sample=True, seed=4, eos_token_id=[])
    out = ours.generate(ids, attention_mask=mask, **options)
    assert out.shape == (2, 13) and np.array_equal(out, ours.generate(ids, attention_mask=mask, **options))


def test_streamer_sees_each_token_as_it_comes(pair):
    ours, _ = pair
    ids, mask = prompts(seed=8, B=2)
    seen = []
    out = ours.generate(ids, attention_mask=mask, max_new_tokens=5, eos_token_id=[], streamer=seen.append)
    assert np.array_equal(np.stack(seen, axis=1), out[:, ids.shape[1]:])

    class Streamer:  # HF's protocol: put(prompt), put(new tokens) …, end()
        def __init__(self):
            self.puts, self.ended = [], False

        def put(self, value):
            self.puts.append(np.asarray(value))

        def end(self):
            self.ended = True

    s = Streamer()
    ours.generate(ids, attention_mask=mask, max_new_tokens=5, eos_token_id=[], streamer=s)
    assert s.ended and np.array_equal(s.puts[0], ids) and len(s.puts) == 6


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
def test_bad_options_give_clear_errors(pair):
    ours, _ = pair
    ids, mask = prompts()
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        ours.generate(ids, do_sample=True, top_p=0.0)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        ours.generate(ids, do_sample=True, top_p=1.5)
    with pytest.raises(ValueError, match="temperature must be > 0 when sampling"):
        ours.generate(ids, do_sample=True, temperature=0.0)
    with pytest.raises(ValueError, match=r"exceeds the model's 40 positions"):
        ours.generate(np.ones((1, 35), dtype=np.int64), max_new_tokens=6)
    with pytest.raises(ValueError, match=r"vocab_size=71"):
        ours.generate(np.full((1, 3), VOCAB))
    with pytest.raises(ValueError, match="padding_side='left'"):
        ours.generate(ids, attention_mask=mask[:, ::-1])
    with pytest.raises(ValueError, match="streamer cannot be used with beam search"):
        ours.generate(ids, num_beams=2, streamer=print)
    with pytest.raises(ValueError, match="num_return_sequences=3 needs num_beams"):
        ours.generate(ids, num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 1"):
        ours.generate(ids, max_new_tokens=0)
    with pytest.raises(ValueError, match="early_stopping"):
        ours.generate(ids, num_beams=2, early_stopping="sometimes")
    with pytest.raises(ValueError, match="repetition_penalty must be > 0"):
        ours.generate(ids, repetition_penalty=0.0)


def test_generation_options_defaults_are_hf_defaults():
    o = GenerationOptions(eos_token_id=[5])
    assert (o.max_new_tokens, o.temperature, o.top_k, o.top_p, o.num_beams, o.length_penalty) == (20, 1.0, 50, 1.0,
                                                                                                    1, 1.0)
    assert o.pad_token_id == 5  # pad defaults to eos, as HF
    assert GPT2Config().eos_token_id == 50256
