import pytest

from groundtune.chat import (IGNORE_INDEX, grounded_chat_template, render, system_text, to_messages,
                             tokenize_chat)
from groundtune.config import DataConfig

TRICKY = 'He said "stop" \\ then {{ left }}.\nNew line; naïve café — 日本 🚀 {% raw %}'


def grounded(tokenizer, system):
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tok.chat_template = grounded_chat_template(tokenizer.chat_template, system)
    return tok


@pytest.mark.parametrize("passage", ["Alice founded Acme.", TRICKY])
def test_template_inserts_exactly_the_training_system_prompt(tokenizer, passage):
    system = system_text(passage, DataConfig())
    tok = grounded(tokenizer, system)
    question_only = render(tok, [{"role": "user", "content": "Who?"}], generation_prompt=True)
    as_trained = render(tokenizer, to_messages("Who?", None, system), generation_prompt=True)
    assert question_only == as_trained
    assert passage in question_only


def test_explicit_system_message_wins(tokenizer):
    tok = grounded(tokenizer, "SECRET PASSAGE")
    text = render(tok, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], True)
    assert "Be brief." in text and "SECRET PASSAGE" not in text


def test_regrounding_replaces_the_passage(tokenizer):
    once = grounded_chat_template(tokenizer.chat_template, "OLD")
    twice = grounded_chat_template(once, "NEW")
    assert "OLD" not in twice and twice.count("NEW") == 1


def test_closed_book_has_no_system_prompt():
    assert system_text("x", DataConfig(open_book=False)) is None


def test_system_prompt_is_exact():
    cfg = DataConfig(system_prompt="Use this:\n{source}\nEnd.")
    assert system_text("P", cfg) == "Use this:\nP\nEnd."


def test_sentence_layout_puts_each_sentence_on_its_own_line():
    passage = "The U.S. sent aid. Rutte met Ukrainian officials on Monday. He spoke."
    text = system_text(passage, DataConfig(passage_layout="sentences"))
    assert text.endswith("Source:\nThe U.S. sent aid.\nRutte met Ukrainian officials on Monday.\nHe spoke.")
    assert system_text(passage, DataConfig()).endswith("Source:\n" + passage)


def test_loss_is_exactly_on_the_answer_and_end_token(tokenizer):
    answer = "Alice founded Acme in 2001, with two partners."
    messages = to_messages("Who founded Acme?", answer, system_text("Alice founded Acme in 2001.", DataConfig()))
    enc = tokenize_chat(tokenizer, messages)
    labelled = [t for t in enc["labels"] if t != IGNORE_INDEX]
    assert tokenizer.decode(labelled) == answer + tokenizer.eos_token
    # labels are one contiguous run, and equal to the input ids where set
    idx = [i for i, t in enumerate(enc["labels"]) if t != IGNORE_INDEX]
    assert idx == list(range(idx[0], idx[-1] + 1))
    assert all(enc["input_ids"][i] == enc["labels"][i] for i in idx)
    # everything before is the prompt the model sees at inference time
    prompt = render(tokenizer, messages[:-1], generation_prompt=True)
    assert tokenizer.decode(enc["input_ids"][: idx[0]]) == prompt


def test_too_long_example_is_an_error(tokenizer):
    from groundtune.errors import GroundtuneError

    messages = to_messages("Q?", "word " * 200, None)
    with pytest.raises(GroundtuneError, match=r"seed.txt:4: example is \d+ tokens, over data.max_length=50"):
        tokenize_chat(tokenizer, messages, max_length=50, where="seed.txt:4")
