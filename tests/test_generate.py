import copy

import pytest
import torch

from groundtune.chat import system_text, to_messages
from groundtune.config import DataConfig
from groundtune.generate import PrefixCache, SequenceBias, batch_greedy, find_draft, lookup_greedy, shared_prefix
from groundtune.save import abstention_bias
from groundtune.infer import Answerer

from conftest import SEED, build_tiny_model

PASSAGE = SEED.read_text().splitlines()[0]
QUESTIONS = ["Who is Rutte?", "How many Patriot systems did Germany provide to Ukraine?", "Why?",
             "What increase in air and missile defense did Rutte advocate for NATO countries?"]


@pytest.fixture(scope="module")
def model(tokenizer):
    """The tiny model with larger random weights: at the default init scale it repeats one token for every
    prompt, which would hide a row mix-up; with these, each prompt gets its own varied continuation."""
    m = build_tiny_model(tokenizer, seed=3).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" not in name:
                p.normal_(0, 0.3)
    return m


def prompts(tokenizer):
    system = system_text(PASSAGE, DataConfig())
    return [tokenizer(tokenizer.apply_chat_template(to_messages(q, None, system), tokenize=False,
                                                    add_generation_prompt=True), add_special_tokens=False)["input_ids"]
            for q in QUESTIONS]


def reference(model, prompt, n, eos, **kwargs):
    out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, eos_token_id=eos,
                         pad_token_id=eos, **kwargs)
    return out[0, len(prompt):].tolist()


def test_shared_prefix_leaves_a_token_to_prefill():
    assert shared_prefix([[1, 2, 3], [1, 2, 3]]) == [1, 2]
    assert shared_prefix([[1, 2, 3, 4], [1, 2, 5]]) == [1, 2]


@pytest.mark.parametrize("use_prefix", [True, False])
def test_batch_greedy_equals_generate(model, tokenizer, use_prefix):
    ps = prompts(tokenizer)
    prefix = PrefixCache(model, shared_prefix(ps)) if use_prefix else None
    assert prefix is None or len(prefix.ids) > 100
    got = batch_greedy(model, ps, 12, tokenizer.eos_token_id, tokenizer.pad_token_id, prefix)
    for p, g in zip(ps, got):
        assert g == reference(model, p, 12, tokenizer.eos_token_id)


def test_batch_greedy_with_an_empty_prefix_equals_generate(model, tokenizer):
    """PrefixCache of no tokens holds no cache; decoding then starts from an empty one."""
    ps = prompts(tokenizer)
    got = batch_greedy(model, ps, 8, tokenizer.eos_token_id, tokenizer.pad_token_id, PrefixCache(model, []))
    assert got == [reference(model, p, 8, tokenizer.eos_token_id) for p in ps]


@pytest.mark.parametrize("use_prefix", [True, False])
def test_batch_greedy_stops_rows_at_eos(model, tokenizer, use_prefix):
    """Rows that finish early leave the batch; the rows still running decode exactly as alone."""
    ps = prompts(tokenizer)
    prefix = PrefixCache(model, shared_prefix(ps)) if use_prefix else None
    first = batch_greedy(model, ps, 12, tokenizer.eos_token_id, tokenizer.pad_token_id, prefix)
    # pretend a token of row 0 that some other row never produces is the end-of-turn token
    eos = next(t for t in first[0] if any(t not in other for other in first[1:]))
    got = batch_greedy(model, ps, 12, eos, tokenizer.pad_token_id, prefix)
    for p, row, full in zip(ps, got, first):
        assert row == (full[: full.index(eos) + 1] if eos in full else full)
        assert row == reference(model, p, 12, eos)
    assert len(got[0]) < 12 and any(len(row) == 12 for row in got), "one row stopped early, another ran on"


@pytest.mark.parametrize("draft_budget", [0, 24, 96])
def test_batch_greedy_with_drafts_equals_generate(model, tokenizer, draft_budget):
    """Six rows, two end early (one idles in the batch, then the batch is compacted), the rest draft from
    a corpus holding parts of their true continuations, plus wrong drafts from the prompt: same tokens."""
    ps = prompts(tokenizer)
    ps = ps + [p[:-2] + p[-1:] for p in ps[:2]]  # six distinct prompts
    prefix = PrefixCache(model, shared_prefix(ps))
    full = [reference(model, p, 20, tokenizer.eos_token_id) for p in ps]
    eos = next(t for t in full[0][2:] if all(t not in other[:15] for other in full[2:]))
    expected = [reference(model, p, 20, eos) for p in ps]
    assert min(len(e) for e in expected) < 20 and max(len(e) for e in expected) == 20
    corpus = [e[2:12] for e in expected] + [e[12:] for e in expected]
    calls = []
    forward = model.forward
    model.forward = lambda *a, **kw: calls.append(1) or forward(*a, **kw)
    try:
        done = []
        got = batch_greedy(model, ps, 20, eos, tokenizer.pad_token_id, prefix, corpus, draft_budget, on_done=done.append)
    finally:
        del model.forward
    assert got == expected
    assert sorted(done) == list(range(6)) and done[0] in [i for i, e in enumerate(expected) if len(e) < 20]
    if draft_budget:
        assert len(calls) < 20, "drafts were accepted: fewer passes than tokens"


def test_find_draft_prefers_longest_recent_match():
    corpus = [[5, 6, 7, 8, 9]]
    assert find_draft([1, 6, 7], corpus, k=2) == [8, 9]
    assert find_draft([1, 2, 3], corpus) == []
    assert find_draft([4, 5, 4, 5], [], k=3) == [4, 5]


def test_lookup_greedy_equals_generate(model, tokenizer):
    ps = prompts(tokenizer)
    prefix = PrefixCache(model, shared_prefix(ps))
    for p in ps:
        expected = reference(model, p, 25, tokenizer.eos_token_id)
        streamed = []
        got = lookup_greedy(model, p, 25, tokenizer.eos_token_id, corpus=[expected[3:15]], prefix=prefix,
                            on_tokens=streamed.extend)
        assert got == expected == streamed


def test_answerer_batches_and_streams_the_same_text(model, tokenizer):
    answerer = Answerer(model, tokenizer, system=system_text(PASSAGE, DataConfig()), max_new_tokens=10)
    batched = answerer.answer(QUESTIONS, batch_size=3)
    written = []
    for q, a in zip(QUESTIONS, batched):
        assert answerer.stream(q, write=written.append) == a
    assert "".join(written).strip().split("\n")[0].strip() == batched[0]


def test_continuation_logprob_equals_one_prompt_at_a_time(model, tokenizer):
    answerer = Answerer(model, tokenizer, system=system_text(PASSAGE, DataConfig()))
    text = "The source does not say"
    cont = tokenizer(text, add_special_tokens=False)["input_ids"]
    batched = answerer.continuation_logprob(QUESTIONS, text, batch_size=3)  # left-padded, logits for the tail only
    for q, got in zip(QUESTIONS, batched):
        ids = answerer.prompt_ids(q)
        with torch.no_grad():
            logp = model(torch.tensor([ids + cont])).logits[0].log_softmax(-1)
        want = sum(logp[len(ids) - 1 + i, t].item() for i, t in enumerate(cont))
        assert got == pytest.approx(want, abs=1e-4)
    assert len(set(round(x, 3) for x in batched)) > 1  # the prompts differ, so do the scores


def biases_that_change_answers(model, tokenizer, ps):
    """sequence_bias entries of each kind transformers knows, each one changing some greedy answer: one token
    pushed at the first answer position only (anchored on the generation prompt), a token of the plain answers
    suppressed everywhere (one-token entry), and a two-token sequence completed mid-answer."""
    plain = [reference(model, p, 12, tokenizer.eos_token_id) for p in ps]
    gen_prompt = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    first = next(t for t in range(len(tokenizer)) if t not in {a[0] for a in plain} and t != tokenizer.eos_token_id)
    entries = [[gen_prompt + [first], 50.0], [[plain[1][3]], -50.0], [[plain[2][2], plain[0][5]], 50.0]]
    return plain, entries


def test_sequence_bias_decodes_as_generate_does(model, tokenizer):
    """groundtune's decoding (batched with drafts, streamed with drafts) applies generation_config.sequence_bias
    as transformers' generate does: token for token, where each entry changes the plain answers."""
    ps = prompts(tokenizer)
    plain, entries = biases_that_change_answers(model, tokenizer, ps)
    expected = [reference(model, p, 12, tokenizer.eos_token_id, sequence_bias=entries) for p in ps]
    assert all(e[0] == entries[0][0][-1] for e in expected), "the anchored entry acts on the first token"
    assert all(entries[1][0][0] not in e for e in expected), "the one-token entry acts everywhere"
    assert expected != plain
    prefix = PrefixCache(model, shared_prefix(ps))
    bias = SequenceBias(entries)
    corpus = [e[1:9] for e in expected]  # drafts that verify under the bias
    for budget in (0, 24):
        got = batch_greedy(model, ps, 12, tokenizer.eos_token_id, tokenizer.pad_token_id, prefix, corpus, budget, bias=bias)
        assert got == expected
    for p, e in zip(ps, expected):
        assert lookup_greedy(model, p, 12, tokenizer.eos_token_id, corpus=corpus, prefix=prefix, bias=bias) == e


def test_answerer_applies_the_models_sequence_bias(model, tokenizer):
    answerer = Answerer(model, tokenizer, system=system_text(PASSAGE, DataConfig()), max_new_tokens=6)
    plain = answerer.answer(QUESTIONS)
    model.generation_config.sequence_bias = abstention_bias(tokenizer, "The source does not say.", 100.0)
    try:
        biased = Answerer(model, tokenizer, system=system_text(PASSAGE, DataConfig()), max_new_tokens=6)
        answers = biased.answer(QUESTIONS)
        assert biased.stream(QUESTIONS[0], write=lambda _: None) == answers[0]
    finally:
        model.generation_config.sequence_bias = None
    first = tokenizer("The", add_special_tokens=False)["input_ids"][0]
    assert all(a.startswith(tokenizer.decode([first])) for a in answers) and answers != plain


def test_abstention_bias_anchors_on_the_generation_prompt(tokenizer):
    [[ids, bias]] = abstention_bias(tokenizer, " The source does not say. ", 2)
    assert bias == 2.0 and tokenizer.decode(ids) == "<|im_start|>assistant\n" + tokenizer.decode(ids[-1:])
    assert ids[-1] == tokenizer("The source", add_special_tokens=False)["input_ids"][0]
    tokenizer_copy = copy.deepcopy(tokenizer)
    tokenizer_copy.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ValueError, match="no generation prompt"):  # nothing to anchor on
        abstention_bias(tokenizer_copy, "The source does not say.", 1.0)


def test_saved_generation_defaults_answer_as_groundtune_decodes(model, tokenizer):
    """A base whose generation_config carries a repetition penalty and an n-gram ban (as Qwen2.5-Instruct's does a
    penalty) changes generate's answers; set_generation_defaults (what a run folder saves) drops them, so pipeline's
    generate answers token for token as the evaluation's decoding."""
    from groundtune.save import set_generation_defaults

    saved = copy.deepcopy(model.generation_config)
    ps = prompts(tokenizer)
    plain = batch_greedy(model, ps, 16, tokenizer.eos_token_id, tokenizer.pad_token_id)
    try:
        model.generation_config.repetition_penalty = 1.8
        model.generation_config.no_repeat_ngram_size = 2
        generate = lambda: [model.generate(torch.tensor([p]), pad_token_id=tokenizer.pad_token_id)[0, len(p):].tolist()
                            for p in ps]  # noqa: E731
        model.generation_config.max_new_tokens = 16
        assert generate() != plain, "the penalties change the answers"
        set_generation_defaults(model, tokenizer, max_new_tokens=16)
        assert generate() == plain
    finally:
        model.generation_config = saved


def test_unapplied_generation_settings_are_named():
    """A model folder whose generation config samples or penalises gets a note naming what groundtune's greedy
    decoding leaves out; neutral values and what it applies (sequence_bias) are not named."""
    from transformers import GenerationConfig

    from groundtune.infer import unapplied_generation

    assert unapplied_generation(GenerationConfig()) == []
    neutral = GenerationConfig(do_sample=False, repetition_penalty=1.0, num_beams=1, no_repeat_ngram_size=0,
                               sequence_bias=[[[1, 2], 3.0]])
    assert unapplied_generation(neutral) == []
    qwen_like = GenerationConfig(do_sample=True, temperature=0.7, top_p=0.8, repetition_penalty=1.1)
    assert unapplied_generation(qwen_like) == ["do_sample=True", "repetition_penalty=1.1"]
