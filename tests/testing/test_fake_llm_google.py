"""FakeLLM speaks Gemini's generateContent as Gemini 3 does about thought signatures: the
google-genai SDK reads them and the fake refuses a tool turn that drops them."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from irisgate.testing import FakeLLM

TOOL = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="list_files",
            description="List the files",
            parameters_json_schema={"type": "object", "properties": {"path": {"type": "string"}}},
        )
    ]
)


def sdk(fake: FakeLLM) -> genai.Client:
    return genai.Client(api_key="AIza-test", http_options=types.HttpOptions(base_url=fake.base_url))


@pytest.mark.parametrize(
    ("model", "signed"), [("gemini-3-pro-preview", True), ("gemini-2.5-flash", False)]
)
def test_gemini_3_signs_its_calls_without_being_asked_for_thoughts(
    fake: FakeLLM, model: str, signed: bool
) -> None:
    client = sdk(fake)
    config = types.GenerateContentConfig(tools=[TOOL])
    asked = types.Content(role="user", parts=[types.Part(text="call tool: list them")])
    called = client.models.generate_content(model=model, contents=[asked], config=config)
    turn = called.candidates[0].content  # type: ignore[index]
    assert turn is not None and turn.parts is not None
    call = turn.parts[0]
    assert call.function_call is not None and call.function_call.name == "list_files"
    assert (call.thought_signature is not None) is signed
    result = types.Part.from_function_response(name="list_files", response={"output": "a.txt"})
    answered = types.Content(role="user", parts=[result])
    again = client.models.generate_content(
        model=model, contents=[asked, turn, answered], config=config
    )
    assert again.text
    if not signed:
        return
    unsigned = types.Content(role="model", parts=[types.Part(function_call=call.function_call)])
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(
            model=model, contents=[asked, unsigned, answered], config=config
        )
    assert refused.value.code == 400
    assert "Function call is missing a thought_signature" in str(refused.value)
