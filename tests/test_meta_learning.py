"""Chapter 5 meta-learning (models.meta_learning): dynamic routing and the relation module, the
BiLSTM + self-attention encoder, the Induction Network, Prototypical Networks, MAML (second and
first order), the MiniLM prototypical learner, evaluation, bad inputs and the recipe."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import minigrad
from minigrad import Tensor
from models.data.arsc import EncodedTexts
from models.data.synthetic_fewshot import synthetic_fewshot
from models.meta_learning import (MAML, DynamicRouting, EncoderConfig, EpisodeBatch, InductionConfig,
                                  InductionNetwork, MAMLConfig, PrototypicalConfig, PrototypicalNetwork,
                                  RelationModule, SentenceEncoder, encode_episode, evaluate_tasks,
                                  negative_squared_distances, parameters_replaced, predict_tasks, prototypes, squash,
                                  summarize, balanced_accuracy)
from models.meta_learning.encoder import check_batch
from models.meta_learning.episodes import check_support, join
from tolerances import assert_close

TINY = EncoderConfig(vocab_size=15, embed_dim=5, hidden_size=3, attention_dim=4, attention_hops=2)


def random_texts(rng, n: int, low: int = 1, high: int = 7, vocab: int = 15) -> EncodedTexts:
    """``n`` right-padded rows of lengths in [low, high] (the first as long as the batch)."""
    lengths = rng.integers(low, high + 1, n)
    lengths[0] = high
    ids = np.zeros((n, high), dtype=np.int64)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, vocab, length)
    return EncodedTexts(ids, (np.arange(high)[None, :] < lengths[:, None]).astype(np.int64))


def random_episode(seed: int = 0, n_way: int = 2, shots: int = 2, queries: int = 3) -> EpisodeBatch:
    rng = np.random.default_rng(seed)
    return EpisodeBatch(f"random{seed}", n_way, random_texts(rng, n_way * shots), np.repeat(np.arange(n_way), shots),
                        random_texts(rng, n_way * queries, high=8), rng.permutation(np.repeat(np.arange(n_way), queries)))


def grads_of(module) -> dict:
    return {name: p.grad for name, p in module.named_parameters()}


# ---------------------------------------------------------------------------------- routing
@settings(max_examples=40)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=6))
@example([0.0, 0.0])  # the zero vector stays 0, not NaN (the book's ε)
@example([1e-8])
@example([4.1308284182465645e-80])  # ‖x‖² underflows to 0: the result is 0
def test_squash_keeps_direction_with_norm_below_one(values):
    x = np.array(values)
    out = squash(Tensor(x)).data
    n2 = (x * x).sum()
    assert np.isfinite(out).all() and np.linalg.norm(out) < 1.0
    assert np.linalg.norm(out) == pytest.approx(n2 / (1 + n2) * np.sqrt(n2) / np.sqrt(n2 + 1e-9), rel=1e-12)
    if n2 > 1e-6:
        assert np.allclose(out / np.linalg.norm(out), x / np.sqrt(n2))


def test_routing_coupling_sums_to_one_and_class_vectors_are_squashed():
    rng = np.random.default_rng(0)
    routing = DynamicRouting(8, iterations=3, dtype=np.float64, generator=minigrad.Generator(1))
    support = Tensor(rng.standard_normal((3, 5, 8)) * 4)
    classes, coupling = routing(support, return_coupling=True)
    assert classes.shape == (3, 8) and coupling.shape == (3, 5)
    np.testing.assert_allclose(coupling.data.sum(axis=1), 1.0, rtol=1e-12)  # over each class's K samples
    assert (coupling.data > 0).all()
    assert (np.linalg.norm(classes.data, axis=1) < 1).all()
    # one iteration: uniform coupling, the squashed mean of the transformed samples
    one = DynamicRouting(8, iterations=1, dtype=np.float64)
    one.W.data[...] = routing.W.data
    np.testing.assert_allclose(one(support).data, squash(Tensor((support.data @ routing.W.data).mean(axis=1))).data,
                               rtol=1e-12)


def test_routing_weighs_the_samples_that_agree():
    """Two samples pointing one way and one the other way: routing moves weight to the pair."""
    routing = DynamicRouting(2, iterations=3, dtype=np.float64)
    routing.W.data[...] = np.eye(2)
    support = Tensor(np.array([[[3.0, 0.0], [3.0, 0.1], [-2.0, 0.0]]]))  # (1, 3, 2)
    _, coupling = routing(support, return_coupling=True)
    assert coupling.data[0, 2] < 1 / 3 < coupling.data[0, 0]


def test_gradcheck_dynamic_routing():
    rng = np.random.default_rng(2)
    routing = DynamicRouting(4, iterations=3, dtype=np.float64)
    support = Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    W = Tensor(rng.standard_normal((4, 4)) * 0.7, requires_grad=True)

    def routed(s, w):
        with parameters_replaced(routing, {"W": w}):
            return routing(s)

    assert minigrad.gradcheck(routed, (support, W))


@pytest.mark.parametrize("mode", ["book", "pairwise"])
def test_gradcheck_relation_module(mode):
    rng = np.random.default_rng(3)
    relation = RelationModule(4, slices=3, n_way=2, mode=mode, dtype=np.float64)
    inputs = [Tensor(rng.standard_normal(shape), requires_grad=True)
              for shape in ((2, 4), (5, 4), *(p.shape for p in (relation.M, relation.W, relation.b)))]

    def scores(classes, queries, M, W, b):
        with parameters_replaced(relation, {"M": M, "W": W, "b": b}):
            return relation(classes, queries)

    assert minigrad.gradcheck(scores, inputs)


def test_relation_equals_the_books_loop_over_slices():
    """The book's Relation: for each slice k, (C, H) M_k (H, Q), concatenated slice-major."""
    rng = np.random.default_rng(4)
    relation = RelationModule(6, slices=4, n_way=2, mode="book", dtype=np.float64, init_mode="book",
                              generator=minigrad.Generator(5))
    classes, queries = rng.standard_normal((2, 6)), rng.standard_normal((3, 6))
    M, W, b = relation.M.data, relation.W.data, relation.b.data
    mid = np.concatenate([classes @ M[:, :, k] @ queries.T for k in range(4)], axis=0)  # (h·C, Q)
    expected = 1 / (1 + np.exp(-(np.maximum(mid.T, 0) @ W + b)))
    np.testing.assert_allclose(relation(Tensor(classes), Tensor(queries)).data, expected, rtol=1e-12)


# ---------------------------------------------------------------------------------- encoder
def test_encoder_vectors_do_not_depend_on_padding():
    rng = np.random.default_rng(6)
    encoder = SentenceEncoder(TINY, generator=minigrad.Generator(0), dtype=np.float64)
    batch = random_texts(rng, 4)
    wide = EncodedTexts(np.pad(batch.ids, ((0, 0), (0, 5)), constant_values=3), np.pad(batch.attention_mask, ((0, 0), (0, 5))))
    together = encoder(wide.ids, wide.attention_mask).data
    for row in range(4):
        length = int(batch.lengths[row])
        alone = encoder(batch.ids[row:row + 1, :length], batch.attention_mask[row:row + 1, :length]).data
        np.testing.assert_allclose(together[row], alone[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("relation", ["book", "pairwise"])
def test_induction_network_equals_a_torch_port(dtype, relation):
    """Outputs and every parameter gradient equal the torch port (packed BiLSTM, the book's routing
    loop, einsum relation) on the same weights."""
    torch = pytest.importorskip("torch")
    from models.meta_learning.torch_port import load_ours, torch_induction_class

    config = InductionConfig(TINY, relation=relation, relation_slices=3)
    ours = InductionNetwork(config, seed=1, dtype=dtype)
    ref = torch_induction_class(torch)(config, getattr(torch, np.dtype(dtype).name))
    load_ours(torch, ref, ours)
    batch = random_episode(7)
    loss, _ = ours.episode_loss(batch)
    loss.backward()
    joined = join(batch.support, batch.query, 0)
    scores = ref(torch.from_numpy(joined.ids), torch.from_numpy(joined.lengths), 2, 4)
    ref_loss = ((scores - torch.from_numpy(np.eye(2, dtype=dtype)[batch.query_labels])) ** 2).mean()
    ref_loss.backward()
    assert_close(ours(batch).data, scores, dtype, "relation scores")
    ref_grads = {n: p.grad for n, p in ref.named_parameters()}
    for name, grad in grads_of(ours).items():
        assert_close(grad, ref_grads[name], dtype, f"d loss / d {name}")


# ---------------------------------------------------------------------------------- MAML
@pytest.mark.parametrize("adapt", ["top", "encoder", "all"])
def test_second_order_maml_meta_gradient_equals_torch(adapt):
    """∇θ L_query(θ'_S(θ)) through 3 inner steps, create_graph=True in both: float64, 1e-10. The
    torch side adapts the same parameters in the plain way (functional_call on the whole model)."""
    torch = pytest.importorskip("torch")
    from models.meta_learning.torch_port import load_ours, torch_classifier_class, torch_maml_loss

    config = MAMLConfig(TINY, inner_steps=3, inner_lr=0.5, adapt=adapt)
    ours = MAML(config, seed=2, dtype=np.float64)
    frozen = [n for n, _ in ours.learner.named_parameters() if n not in ours.adapted_names()]
    assert len(frozen) == {"top": 9, "encoder": 1, "all": 0}[adapt]
    ref = torch_classifier_class(torch)(TINY, 2, torch.float64)
    load_ours(torch, ref, ours.learner)
    batch = random_episode(8)
    loss, _ = ours.episode_loss(batch)
    loss.backward()
    ref_loss = torch_maml_loss(torch, ref, batch, 3, 0.5, frozen, create_graph=True)
    ref_loss.backward()
    assert_close(loss.data, ref_loss, np.float64, "meta-loss")
    ref_grads = {"learner." + n: p.grad for n, p in ref.named_parameters()}
    for name, grad in grads_of(ours).items():
        assert_close(grad, ref_grads[name], np.float64, f"meta-gradient {name}")
    if adapt == "top":  # the benchmark's torch variant (support states computed once) is the same math
        ref.zero_grad()
        torch_maml_loss(torch, ref, batch, 3, 0.5, frozen, support_states_once=True).backward()
        for name, grad in grads_of(ours).items():
            assert_close(grad, dict(ref.named_parameters())[name[len("learner."):]].grad, np.float64, name)


@pytest.mark.parametrize("adapt", ["top", "encoder"])
def test_first_order_maml_is_the_query_gradient_at_the_adapted_weights(adapt):
    batch = random_episode(9)
    config = MAMLConfig(TINY, inner_steps=2, inner_lr=0.5, first_order=True, adapt=adapt)
    fomaml = MAML(config, seed=3, dtype=np.float64)
    fomaml.episode_loss(batch)[0].backward()
    # the definition: adapt with plain SGD, then the query loss gradient of a model holding θ'
    fast = fomaml.adapt(batch.support, batch.support_labels, create_graph=False)
    at_adapted = MAML(config, seed=0, dtype=np.float64)
    at_adapted.learner.load_state_dict({**fomaml.learner.state_dict(), **{n: w.data for n, w in fast.items()}})
    minigrad.functional.cross_entropy(at_adapted.learner(batch.query), batch.query_labels).backward()
    expected = grads_of(at_adapted)
    for name, grad in grads_of(fomaml).items():
        np.testing.assert_allclose(grad, expected[name], rtol=1e-12, atol=1e-15, err_msg=name)
    # and it is not the second-order meta-gradient (the Hessian terms are there)
    second = MAML(MAMLConfig(TINY, inner_steps=2, inner_lr=0.5, adapt=adapt), seed=3, dtype=np.float64)
    second.episode_loss(batch)[0].backward()
    assert max(np.abs(g - grads_of(second)[n]).max() for n, g in grads_of(fomaml).items()) > 1e-6


def test_maml_adaptation_fits_the_support_and_evaluates_without_a_graph():
    batch = random_episode(10)
    maml = MAML(MAMLConfig(TINY, inner_steps=5, inner_lr=1.0), seed=4, dtype=np.float64)
    before = minigrad.functional.cross_entropy(maml.learner(batch.support), batch.support_labels).item()
    with minigrad.no_grad():  # as in evaluation: read_support turns gradients back on for its inner loop
        fast = maml.read_support(batch.support, batch.support_labels, 2)
    after = minigrad.functional.cross_entropy(maml.query_logits(fast, batch.support), batch.support_labels).item()
    assert after < before
    assert all(not w.requires_grad for w in fast.values())
    assert all(p.grad is None for p in maml.parameters())  # evaluation left no gradients behind


def test_parameters_replaced_checks_and_restores():
    classifier = MAML(MAMLConfig(TINY), seed=0).learner
    original = classifier.head.weight
    with pytest.raises(KeyError, match="no parameter 'head.nope'"):
        with parameters_replaced(classifier, {"head.weight": Tensor(np.zeros((2, 6), np.float32)),
                                              "head.nope": Tensor(np.zeros(2))}):
            pass
    assert classifier.head.weight is original  # put back after the error
    with pytest.raises(ValueError, match=r"head.weight has shape \(2, 6\)"):
        with parameters_replaced(classifier, {"head.weight": Tensor(np.zeros((6, 2)))}):
            pass
    assert classifier.head.weight is original


# ---------------------------------------------------------------------------------- prototypes
def test_prototypes_and_distances_equal_their_definition():
    rng = np.random.default_rng(11)
    support, queries = rng.standard_normal((6, 4)), rng.standard_normal((5, 4))
    labels = np.array([1, 0, 1, 2, 0, 2])
    protos = prototypes(Tensor(support), labels, 3).data
    np.testing.assert_allclose(protos, [support[labels == c].mean(axis=0) for c in range(3)], rtol=1e-12)
    logits = negative_squared_distances(Tensor(queries), Tensor(protos), scale=2.0).data
    np.testing.assert_allclose(logits, -2 * ((queries[:, None] - protos[None]) ** 2).sum(-1), rtol=1e-12)


def test_prototypical_network_loss_and_torch_gradients():
    torch = pytest.importorskip("torch")
    from models.meta_learning.torch_port import load_ours, torch_encoder_class

    ours = PrototypicalNetwork(PrototypicalConfig(TINY), seed=5, dtype=np.float64)
    ref = torch_encoder_class(torch)(TINY, torch.float64)
    load_ours(torch, ref, ours.encoder)
    batch = random_episode(12, n_way=3)
    loss, metrics = ours.episode_loss(batch)
    loss.backward()
    joined = join(batch.support, batch.query, 0)
    vectors = ref(torch.from_numpy(joined.ids), torch.from_numpy(joined.lengths))
    support, queries = vectors[:6], vectors[6:]
    protos = torch.stack([support[torch.from_numpy(batch.support_labels == c)].mean(0) for c in range(3)])
    ref_loss = torch.nn.functional.cross_entropy(-torch.cdist(queries, protos) ** 2, torch.from_numpy(batch.query_labels))
    ref_loss.backward()
    assert_close(loss.data, ref_loss, np.float64, "prototypical loss")
    ours_grads = grads_of(ours.encoder)
    for name, p in ref.named_parameters():
        assert_close(ours_grads[name], p.grad, np.float64, f"d loss / d {name}")
    assert metrics["size"] == 9


# ---------------------------------------------------------------------------------- MiniLM
@pytest.mark.slow  # about 12 s: a small BERT's forward and backward, ours and HF's
def test_minilm_prototypical_equals_hf_and_saves_for_hf(tmp_path):
    """A random-init small BERT saved by HF: our episode loss and every gradient equal HF's mean-pooled,
    normalised prototypes; our save_pretrained opens in HF's BertModel."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from models.meta_learning import MiniLMPrototypical

    torch.manual_seed(0)
    hf_config = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=32, max_position_embeddings=32,
                                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    hf = transformers.BertModel(hf_config).eval()
    hf.save_pretrained(tmp_path / "hf")
    ours = MiniLMPrototypical.from_minilm(tmp_path / "hf", freeze=False)
    ours.eval()  # no dropout on either side
    rng = np.random.default_rng(13)
    batch = EpisodeBatch("hf", 2, random_texts(rng, 4, 2, 9, vocab=40), np.array([0, 0, 1, 1]),
                         random_texts(rng, 5, 2, 11, vocab=40), np.array([1, 0, 1, 0, 0]))
    loss, _ = ours.episode_loss(batch)
    loss.backward()

    def embed(texts):
        ids, mask = torch.from_numpy(texts.ids), torch.from_numpy(texts.attention_mask)
        hidden = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        mean = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return torch.nn.functional.normalize(mean, dim=-1)

    support, queries = embed(batch.support), embed(batch.query)
    protos = torch.stack([support[:2].mean(0), support[2:].mean(0)])
    logits = -10.0 * ((queries[:, None] - protos[None]) ** 2).sum(-1)
    ref_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(batch.query_labels))
    ref_loss.backward()
    assert_close(loss.data, ref_loss, np.float32, "episode loss")
    hf_grads = {n: p.grad for n, p in hf.named_parameters()}
    for name, p in ours.bert.named_parameters():
        if name.startswith("pooler."):  # mean pooling: the pooler takes no part, in both
            assert p.grad is None and hf_grads[name] is None
        else:
            assert_close(p.grad, hf_grads[name], np.float32, f"d loss / d {name}")
    ours.save_pretrained(tmp_path / "ours")
    reloaded = transformers.BertModel.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        ids, mask = torch.from_numpy(batch.query.ids), torch.from_numpy(batch.query.attention_mask)
        assert_close(ours.bert(batch.query.ids, batch.query.attention_mask).last_hidden_state.data,
                     reloaded(input_ids=ids, attention_mask=mask).last_hidden_state, np.float32, "HF reload")
    again = MiniLMPrototypical.from_pretrained(tmp_path / "ours")
    assert again.config.freeze is False and again.config.scale == 10.0
    np.testing.assert_array_equal(again.embed(batch.query).data, ours.embed(batch.query).data)


# ---------------------------------------------------------------------------------- learners
@pytest.mark.parametrize("make", [
    lambda: InductionNetwork(InductionConfig(TINY, relation_slices=3), seed=6),
    lambda: PrototypicalNetwork(PrototypicalConfig(TINY), seed=6),
    lambda: MAML(MAMLConfig(TINY, inner_steps=2), seed=6),
], ids=["induction", "proto", "maml"])
def test_save_load_and_chunked_evaluation(tmp_path, make):
    model = make()
    tasks = [random_episode(seed) for seed in (14, 15)]
    accuracies = evaluate_tasks(model, tasks, chunk=100)
    assert evaluate_tasks(model, tasks, chunk=2) == accuracies  # chunks and their order change nothing
    for task in tasks:  # the accuracy is that of scoring every query at once
        scores = model.score_queries(model.read_support(task.support, task.support_labels, 2), task.query)
        assert accuracies[task.name] == float((scores.argmax(1) == task.query_labels).mean())
    model.save_pretrained(tmp_path)
    again = type(model).from_pretrained(tmp_path)
    assert again.config == model.config
    assert evaluate_tasks(again, tasks) == accuracies
    with pytest.raises(ValueError, match="task names must be unique"):
        evaluate_tasks(model, [tasks[0], tasks[0]])
    with pytest.raises(ValueError, match="not a"):
        (PrototypicalNetwork if not isinstance(model, PrototypicalNetwork) else MAML).from_pretrained(tmp_path)


def test_summary_and_encoded_evaluation_tasks():
    bench = synthetic_fewshot(0)
    from models.data.arsc import build_vocab
    vocab = build_vocab(bench.train_tasks)
    full = encode_episode(bench.test_tasks[0], vocab, 32)
    assert full.size == len(bench.test_tasks[0].query_texts)  # every query of a test task is kept
    sample = encode_episode(bench.dev_tasks[0], vocab, 32, max_queries=10, seed=3)
    assert sample.size == 10 and sample.query_labels.tolist() == \
        [bench.dev_tasks[0].query_labels[i] for i in sorted(np.random.default_rng(3).choice(100, 10, replace=False))]
    out = summarize({"a": 0.5, "b": 1.0}, [full, sample])
    assert out["mean"] == 0.75 and out["std"] == 0.25 and out["pooled"] == pytest.approx((0.5 * 100 + 10) / 110)


def test_balanced_accuracy_is_the_mean_recall():
    labels = np.array([1, 1, 1, 1, 1, 1, 0, 0])
    predicted = np.array([1, 1, 1, 1, 1, 1, 1, 0])  # positives all right, one negative of two
    assert balanced_accuracy(predicted, labels, 2) == 0.75 and (predicted == labels).mean() == 0.875
    assert balanced_accuracy(np.ones(8, int), labels, 2) == 0.5  # the majority answer is chance
    assert balanced_accuracy([2, 0, 0], [2, 2, 0], 3) == 0.75  # a class without queries is left out
    # on balanced queries it is the accuracy; evaluate_tasks(balanced=True) scores each task so
    model = PrototypicalNetwork(PrototypicalConfig(TINY), seed=6)
    tasks = [random_episode(seed, queries=4) for seed in (17, 18)]
    unbalanced = random_episode(19, queries=4)
    unbalanced = EpisodeBatch("unbalanced", 2, unbalanced.support, unbalanced.support_labels, unbalanced.query,
                              np.array([0, 1, 1, 1, 1, 1, 1, 1]))
    plain, balanced = evaluate_tasks(model, tasks), evaluate_tasks(model, tasks, balanced=True)
    assert balanced == pytest.approx(plain)
    predicted = predict_tasks(model, [unbalanced])["unbalanced"]
    assert evaluate_tasks(model, [unbalanced], balanced=True)["unbalanced"] == \
        np.mean([(predicted[unbalanced.query_labels == c] == c).mean() for c in (0, 1)])


# ---------------------------------------------------------------------------------- bad inputs
def test_bad_inputs_are_named():
    induction = InductionNetwork(InductionConfig(TINY, relation_slices=3))
    batch = random_episode(16)
    unbalanced = EpisodeBatch("x", 2, batch.support, np.array([0, 0, 0, 1]), batch.query, batch.query_labels)
    with pytest.raises(ValueError, match="InductionNetwork: every class needs the same number"):
        induction.episode_loss(unbalanced)
    with pytest.raises(ValueError, match=r"prototypes: support labels must cover every class 0..2"):
        prototypes(Tensor(np.zeros((4, 3))), [0, 1, 1, 0], 3)
    with pytest.raises(ValueError, match="built for n_way=2"):
        induction.relation(Tensor(np.zeros((3, 6), np.float32)), Tensor(np.zeros((2, 6), np.float32)))
    with pytest.raises(ValueError, match="DynamicRouting: expected support vectors"):
        induction.induction(Tensor(np.zeros((4, 6), np.float32)))
    ids = np.array([[1, 2, 0], [3, 0, 0]])
    for mask, message in (([[1, 0, 1], [1, 0, 0]], "prefix"), ([[1, 1, 0], [0, 0, 0]], "row 1 has no real token"),
                          ([[1, 1]], "attention_mask has shape")):
        with pytest.raises(ValueError, match=message):
            check_batch("SentenceEncoder", ids, np.array(mask), 15)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 3\)"):
        check_batch("SentenceEncoder", ids, ids > 0, 3)
    with pytest.raises(ValueError, match="EncoderConfig: hidden_size must be an int >= 1"):
        EncoderConfig(hidden_size=0)
    with pytest.raises(ValueError, match="InductionConfig: relation must be one of"):
        InductionConfig(TINY, relation="concat")
    with pytest.raises(ValueError, match="MAMLConfig: inner_lr must be a number > 0"):
        MAMLConfig(TINY, inner_lr=0)
    with pytest.raises(ValueError, match="MAMLConfig: adapt must be one of"):
        MAMLConfig(TINY, adapt="head")
    with pytest.raises(ValueError, match="MAML: built for n_way=2, got a 3-way task"):
        MAML(MAMLConfig(TINY)).read_support(batch.support, [0, 1, 2, 2], 3)
    with pytest.raises(ValueError, match="check_support|support labels must be a 1-D integer"):
        check_support("prototypes", np.array([0.0, 1.0]), 2)


# ---------------------------------------------------------------------------------- recipe
def _recipe(tmp_path, name, *extra):
    from models.cli import main

    out = tmp_path / name
    code = main(["fewshot-reviews", "--out", str(out), "--episodes-per-eval", "3", "--dev-queries", "6",
                 "--max-length", "12", "--no-progress", *extra])
    return code, out


@pytest.mark.slow  # about 12 s: three recipe runs
def test_recipe_runs_on_the_synthetic_family_and_resumes_exactly(tmp_path, capsys):
    """A run stopped by its time budget prints the command that finishes it; that command (every
    run-shaping option carried, here non-default ones) resumes it to the same numbers as a run that
    never stopped."""
    import shlex

    from models.cli import main

    args = ("--method", "proto", "--seed", "1", "--epochs", "2", "--class-order", "fixed")
    code, straight = _recipe(tmp_path, "straight", *args)
    assert code == 0
    assert (straight / "dev_accuracy.png").is_file() and (straight / "best" / "config.json").is_file()
    capsys.readouterr()
    assert _recipe(tmp_path, "split", *args, "--time-budget", "0.001")[0] == 0  # stops at once
    printed = capsys.readouterr().out
    assert re.search(r"training stopped on its time budget after \d+ episodes", printed)
    command = printed.rstrip().splitlines()[-1].split()
    assert command[:4] == ["python", "-m", "models", "fewshot-reviews"] and command[-3:] == \
        ["--time-budget", "0", "--resume"]
    assert "--class-order fixed" in " ".join(command)
    assert main(command[3:] + ["--no-progress"]) == 0
    split = tmp_path / "split"
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (straight, split))
    assert a["episodes_trained"] == b["episodes_trained"] == 6
    # the stopped run also scored dev where it stopped (step 0); its epoch-end scores are the straight run's
    assert a["dev_curve"] == [e for e in b["dev_curve"] if e["episodes"] % 3 == 0 and e["episodes"]]
    assert a["test"] == b["test"]
    assert len(a["test"]["per_task"]) == 12 and a["benchmark"] == "synthetic-fewshot-1"
    for row in a["test"]["per_task"].values():  # the synthetic queries are balanced: the two accuracies agree
        assert row["majority_class"] == 0.5 and row["balanced_accuracy"] == pytest.approx(row["accuracy"])
    assert shlex.join(command)  # a plain command line, nothing to quote


def test_recipe_trains_second_order_maml(tmp_path):
    code, out = _recipe(tmp_path, "maml", "--method", "maml", "--epochs", "1", "--meta-batch", "3",
                        "--inner-steps", "2", "--no-plot")
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["episodes_trained"] == 3 and metrics["learner"]["first_order"] is False


def test_recipe_book_protocol_with_support_draws(tmp_path, capsys):
    """On a miniature ARSC folder, the book protocol scores every test domain once on its fixed
    support and, with --support-draws, on further seeded draws: same seed, same numbers."""
    from test_arsc import mini_arsc

    from models.data.arsc import BOOK_TEST_DOMAINS

    (tmp_path / "arsc").mkdir()
    data = mini_arsc(tmp_path / "arsc")
    runs = [_recipe(tmp_path, name, "--data", str(data), "--protocol", "book", "--vocab", "words", "--method",
                    "proto", "--epochs", "1", "--queries", "3", "--support-draws", "3", "--no-plot")
            for name in ("a", "b")]
    assert [code for code, _ in runs] == [0, 0]
    a, b = (json.loads((out / "metrics.json").read_text()) for _, out in runs)
    draws = a["test_support_draws"]
    assert draws["draws"] == 3 and list(draws["per_task"]) == list(BOOK_TEST_DOMAINS) == list(a["test"]["per_task"])
    assert draws == {**b["test_support_draws"], "seconds": draws["seconds"]}
    spread = draws["balanced"]
    assert spread["min"] <= spread["mean"] <= spread["max"] and spread["std_over_draws"] >= 0
    assert "test over 3 further support draws" in capsys.readouterr().out
    assert _recipe(tmp_path, "c", "--support-draws", "2")[0] == 2
    assert "--support-draws applies to --protocol book with --data" in capsys.readouterr().err
    assert _recipe(tmp_path, "c", "--dev-supports", "2")[0] == 2
    assert "--dev-supports applies to --protocol book with --data" in capsys.readouterr().err


def test_recipe_selects_on_dev_averaged_over_supports(tmp_path, capsys, monkeypatch):
    """--dev-supports R scores every dev domain on its fixed support and on R − 1 further draws
    (``book_support_draws``, the same queries) and the dev curve records the mean over the R."""
    from test_arsc import mini_arsc

    import models.recipes.fewshot_reviews as recipe
    from models.data.arsc import BOOK_DEV_DOMAINS, book_support_draws

    (tmp_path / "arsc").mkdir()
    data = mini_arsc(tmp_path / "arsc")
    calls = []  # (tasks, scores) of every _scores call

    def recording(predictions, tasks):
        calls.append((tasks, scores := real(predictions, tasks)))
        return scores

    real = recipe._scores
    monkeypatch.setattr(recipe, "_scores", recording)
    code, out = _recipe(tmp_path, "r3", "--data", str(data), "--protocol", "book", "--vocab", "words", "--method",
                        "proto", "--epochs", "2", "--queries", "3", "--no-plot", "--dev-supports", "3")
    assert code == 0 and "5 dev tasks (30 queries, 3 supports each)" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    dev_calls = [(tasks, scores) for tasks, scores in calls if [t.name for t in tasks] == list(BOOK_DEV_DOMAINS)]
    assert len(dev_calls) == 3 * 2 and metrics["config"]["dev_supports"] == 3  # 3 supports x 2 evaluations
    fixed, *redrawn = [tasks for tasks, _ in dev_calls[:3]]
    for r, draw in enumerate(book_support_draws(data, "dev", seed=0, draws=3)[1:]):  # draw 0 repeats a fixed support
        for batch, base, task in zip(redrawn[r], fixed, draw):
            assert batch.query is base.query and batch.support_labels.tolist() == list(task.support_labels)
            assert batch.support.ids.shape[0] == 10 and not np.array_equal(batch.support.ids, base.support.ids)
    for e, entry in enumerate(metrics["dev_curve"]):
        means = [scores["balanced"]["mean"] for _, scores in dev_calls[3 * e:3 * e + 3]]
        assert entry["dev_balanced_accuracy"] == pytest.approx(np.mean(means), abs=1e-12)
    assert _recipe(tmp_path, "r1", "--data", str(data), "--protocol", "book", "--vocab", "words", "--method",
                   "proto", "--epochs", "1", "--queries", "3", "--no-plot")[0] == 0
    assert "supports each" not in capsys.readouterr().out  # the default: the fixed support alone


def test_recipe_bad_inputs_exit_2(tmp_path, capsys):
    assert _recipe(tmp_path, "a", "--data", str(tmp_path / "missing"))[0] == 2
    assert "error: resolve_data_dir: no such folder" in capsys.readouterr().err
    data = tmp_path / "arsc"
    data.mkdir()
    (data / "workspace.filtered.list").write_text("apparel\nbooks\n")
    (data / "workspace.target.list").write_text("books\n")
    for t in ("t2", "t4", "t5"):
        (data / f"apparel.{t}.train").write_text("good shoes\t1\nbad shoes\t2\n")
    assert _recipe(tmp_path, "b", "--data", str(data))[0] == 2
    assert "label '2' is not 1 or -1" in capsys.readouterr().err
    assert _recipe(tmp_path, "c", "--method", "minilm-proto", "--vocab", "words")[0] == 2
    assert "error: fewshot-reviews recipe: --method minilm-proto reads MiniLM's WordPiece" in capsys.readouterr().err
    assert _recipe(tmp_path, "d", "--k-shot", "70")[0] == 2  # more shots than the synthetic pools hold
    assert "k_shot + q_queries" in capsys.readouterr().err
