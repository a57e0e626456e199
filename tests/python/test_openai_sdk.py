"""The official `openai` Python SDK against `quorum serve`.

Run by `cargo test --release --test openai_python_sdk`, which starts the
server and sets QUORUM_BASE_URL (e.g. http://127.0.0.1:PORT).
"""

import os

import openai
import pytest

BASE_URL = os.environ["QUORUM_BASE_URL"]
MODEL = os.environ.get("QUORUM_MODEL_ID", "tiny")
MESSAGES = [
    {"role": "developer", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
]


@pytest.fixture(scope="module")
def client():
    return openai.OpenAI(base_url=BASE_URL + "/v1", api_key="unused", max_retries=0)


def test_chat(client):
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5, seed=1)
    assert r.object == "chat.completion"
    assert r.model == MODEL
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert 1 <= r.usage.completion_tokens <= 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    # Think mode is on by default (Qwen3 tokenizer): reasoning counts too.
    assert 0 <= r.usage.completion_tokens_details.reasoning_tokens <= r.usage.completion_tokens
    assert r.usage.prompt_tokens_details.cached_tokens == 0


def test_stream(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=5,
        n=2,
        seed=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts, finish, usage, roles = {}, {}, None, set()
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            assert chunk.choices == []
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.role:
                roles.add(c.index)
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
            if c.finish_reason:
                finish[c.index] = c.finish_reason
    assert roles == {0, 1}
    assert set(finish) == {0, 1}
    assert usage is not None and usage.completion_tokens >= 2
    # The same seeded request without streaming gives the same texts.
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5, n=2, seed=3)
    for c in r.choices:
        assert c.message.content == texts[c.index]


def test_n_greater_than_one(client):
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=3, n=3)
    assert sorted(c.index for c in r.choices) == [0, 1, 2]


def test_vendor_fields_in_extra_body(client):
    r = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=3,
        n=2,
        extra_body={
            "rollouts": 4,
            "chat_template_kwargs": {"enable_thinking": False},
            "top_k": 20,
            "min_p": 0.05,
            "repetition_penalty": 1.1,
        },
    )
    assert len(r.choices) == 2
    # Usage covers every rollout decoded, not only the two returned.
    assert r.usage.completion_tokens >= 4


def test_logprobs(client):
    r = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=3, logprobs=True, top_logprobs=2
    )
    content = r.choices[0].logprobs.content
    assert len(content) >= 1
    assert content[0].logprob <= 0.0
    assert len(content[0].top_logprobs) == 2
    assert isinstance(content[0].bytes, list)


def test_completions(client):
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=4, echo=True, logprobs=1)
    assert r.object == "text_completion"
    assert r.choices[0].text.startswith("Once upon a time")
    assert r.choices[0].logprobs.token_logprobs[0] is None


def test_models(client):
    ids = [m.id for m in client.models.list().data]
    assert MODEL in ids
    assert client.models.retrieve(MODEL).id == MODEL


def test_bad_request_raises(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=3, temperature=5)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[], max_tokens=3)


def test_unknown_model_raises_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES, max_tokens=3)
    assert e.value.body["code"] == "model_not_found"
