"""The Responses API (`/v1/responses`, stateless) through the openai SDK's `client.responses` and
LangChain's `ChatOpenAI(use_responses_api=True)`: the same answers as the chat completion the
request stands for, whole or as typed stream events, tool calls and their results, JSON schemas,
and a clear 400 for what needs stored responses."""
import json

import jsonschema
import openai
import pytest

from conftest import MODEL

VITALS = {"type": "function", "name": "get_vitals", "description": "Latest vital signs of the patient in a bed",
          "parameters": {"type": "object", "properties": {"bed": {"type": "integer"}}, "required": ["bed"],
                         "additionalProperties": False}}
ASK = dict(model=MODEL, instructions="Answer briefly.", input="Name one antibiotic.", max_output_tokens=20,
           temperature=0)


def test_a_response_is_the_chat_completion_it_stands_for(client):
    r = client.responses.create(**ASK)
    chat = client.chat.completions.create(
        model=MODEL, max_completion_tokens=20, temperature=0,
        messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name one antibiotic."}])
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.output_text == chat.choices[0].message.content
    assert [o.type for o in r.output] == ["message"]
    assert r.status == ("incomplete" if chat.choices[0].finish_reason == "length" else "completed")
    assert r.usage.input_tokens == chat.usage.prompt_tokens
    assert r.usage.output_tokens == chat.usage.completion_tokens
    assert r.instructions == "Answer briefly." and r.max_output_tokens == 20


def test_streamed_events_add_up_to_the_whole_response(client):
    whole = client.responses.create(**ASK)
    kinds, text, numbers = [], "", []
    for e in client.responses.create(**ASK, stream=True):
        kinds.append(e.type)
        numbers.append(e.sequence_number)
        if e.type == "response.output_text.delta":
            text += e.delta
    assert text == whole.output_text
    assert numbers == list(range(len(numbers)))
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    # The SDK's own accumulator reads the same stream into the same answer.
    with client.responses.stream(**ASK) as stream:
        for _ in stream:
            pass
        assert stream.get_final_response().output_text == whole.output_text


def test_a_required_call_goes_back_with_its_output(client):
    ask = dict(model=MODEL, input="What are the vitals of the patient in bed 4?", tools=[VITALS],
               tool_choice="required", max_output_tokens=40, temperature=0)
    r = client.responses.create(**ask)
    call = r.output[0]
    assert call.type == "function_call" and call.name == "get_vitals" and call.call_id
    jsonschema.validate(json.loads(call.arguments), VITALS["parameters"])
    args = "".join(e.delta for e in client.responses.create(**ask, stream=True)
                   if e.type == "response.function_call_arguments.delta")
    assert args == call.arguments
    follow = client.responses.create(
        model=MODEL, tools=[VITALS], max_output_tokens=10, temperature=0,
        input=[{"role": "user", "content": "What are the vitals of the patient in bed 4?"},
               {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
               {"type": "function_call_output", "call_id": call.call_id, "output": '{"pulse": 88}'}])
    assert follow.status in ("completed", "incomplete") and follow.output[0].type in ("message", "function_call")


def test_text_format_json_schema_gives_a_valid_document(client):
    schema = {"type": "object", "properties": {"age": {"type": "integer"}, "diagnosis": {"type": "string"}},
              "required": ["age", "diagnosis"], "additionalProperties": False}
    r = client.responses.create(model=MODEL, input="A 70-year-old with pneumonia, as JSON.", max_output_tokens=60,
                                temperature=0, text={"format": {"type": "json_schema", "name": "case",
                                                                "schema": schema}})
    assert r.status == "completed"
    jsonschema.validate(json.loads(r.output_text), schema)


@pytest.mark.parametrize("extra, param", [
    ({"store": True}, "store"),
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"input": 5}, "input"),
    ({"input": [{"type": "input_image"}]}, "input[0].type"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
])
def test_what_needs_stored_responses_or_is_unsupported_is_a_400(client, extra, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(**{**ASK, **extra})
    assert e.value.body["param"] == param


def test_langchain_chat_openai_on_the_responses_api(server, client):
    from langchain_openai import ChatOpenAI
    llm = ChatOpenAI(base_url=server.url + "/v1", api_key="unused", model=MODEL, use_responses_api=True,
                     max_tokens=20, temperature=0, max_retries=0)
    want = client.responses.create(model=MODEL, input="Name one antibiotic.", max_output_tokens=20,
                                   temperature=0).output_text
    assert llm.invoke("Name one antibiotic.").text == want
    assert "".join(chunk.text for chunk in llm.stream("Name one antibiotic.")) == want
