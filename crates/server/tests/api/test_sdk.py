"""The official `openai` Python package against `ward serve` on SmolLM2: chat and completions,
streaming and not, stop sequences, usage, seeds, and errors as the SDK raises them."""
import openai
import pytest

from conftest import MODEL

CHAT = [{"role": "user", "content": "What is a normal resting heart rate for adults?"}]


def test_models_lists_the_served_model(client):
    ids = [m.id for m in client.models.list().data]
    assert ids == [MODEL]


def test_chat_completion(client):
    r = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=24, temperature=0)
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.model == MODEL
    assert r.system_fingerprint
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    u = r.usage
    assert u.prompt_tokens > 10 and 0 < u.completion_tokens <= 24
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    if choice.finish_reason == "length":
        assert u.completion_tokens == 24


def test_chat_stream_equals_the_non_streamed_answer(client):
    whole = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=24, temperature=0)
    stream = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=24, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert len({c.id for c in chunks}) == 1


def test_completion_and_its_stream(client):
    prompt = "The patient was admitted to the intensive care unit because"
    r = client.completions.create(model=MODEL, prompt=prompt, max_tokens=12, temperature=0)
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 12
    assert r.choices[0].text.strip()
    pieces = list(client.completions.create(model=MODEL, prompt=prompt, max_tokens=12, temperature=0,
                                            stream=True))
    assert "".join(p.choices[0].text for p in pieces) == r.choices[0].text
    assert pieces[-1].choices[0].finish_reason == "length"


def test_completions_default_to_sixteen_tokens(client):
    r = client.completions.create(model=MODEL, prompt="Sepsis is defined as", temperature=0)
    assert r.usage.completion_tokens <= 16
    if r.choices[0].finish_reason == "length":
        assert r.usage.completion_tokens == 16


def test_stop_sequence_ends_the_text_before_it(client):
    prompt = "List three signs of dehydration in children:\n1."
    free = client.completions.create(model=MODEL, prompt=prompt, max_tokens=30, temperature=0).choices[0].text
    words = free.split()
    assert len(words) >= 4, free
    stop = words[2]
    r = client.completions.create(model=MODEL, prompt=prompt, max_tokens=30, temperature=0, stop=[stop, "zzzz"])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text == free[:free.index(stop)]
    # The same through the stream: the stop text never appears, even split across tokens.
    pieces = client.completions.create(model=MODEL, prompt=prompt, max_tokens=30, temperature=0, stop=stop,
                                       stream=True)
    assert "".join(p.choices[0].text for p in pieces) == r.choices[0].text


def test_a_seed_reproduces_a_sampled_answer(client):
    def sample(seed):
        return client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=20, temperature=0.9,
                                              top_p=0.95, seed=seed).choices[0].message.content
    a, b = sample(1234), sample(1234)
    assert a == b
    assert any(sample(s) != a for s in (1, 2, 3))


def test_max_tokens_one_is_a_length_finish(client):
    r = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=1)
    assert r.usage.completion_tokens == 1 and r.choices[0].finish_reason == "length"


def test_errors_raise_the_sdk_exceptions(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=CHAT, temperature=-1)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=CHAT)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="hello " * 1500, max_tokens=100_000)
    assert e.value.body["code"] == "context_length_exceeded"
