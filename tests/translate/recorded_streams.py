"""Recorded-shape provider streams for the translation tests (the vendors' wire format, with
the edge cases: parallel tool calls, thinking with a signature, usage in the last events)."""

from __future__ import annotations

#: a Chat Completions stream: text, then two parallel tool calls whose arguments arrive in
#: pieces, the finish reason, then the usage chunk (stream_options.include_usage) and [DONE]
OPENAI_TOOLS = b"".join(
    b"data: " + line + b"\n\n"
    for line in (
        b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1",'
        b'"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
        b'"logprobs":null,"finish_reason":null}],"usage":null}',
        b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1",'
        b'"choices":[{"index":0,"delta":{"content":"Checking caf\xc3\xa9s"},"finish_reason":null}],'
        b'"usage":null}',
        b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1",'
        b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function",'
        b'"function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}],"usage":null}',
        b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1",'
        b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":'
        b'"{\\"city\\": "}}]},"finish_reason":null}],"usage":null}',
        b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1",'
        b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":'
        b'"\\"Paris\\"}"}}]},"finish_reason":null}],"usage":null}',
        b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1",'
        b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function",'
        b'"function":{"name":"get_time","arguments":"{\\"tz\\": \\"CET\\"}"}}]},'
        b'"finish_reason":null}],"usage":null}',
        b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1",'
        b'"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}',
        b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1",'
        b'"choices":[],"usage":{"prompt_tokens":160,"completion_tokens":30,"total_tokens":190,'
        b'"prompt_tokens_details":{"cached_tokens":100},'
        b'"completion_tokens_details":{"reasoning_tokens":12}}}',
        b"[DONE]",
    )
)

#: a Messages stream: signed thinking, text, two tool_use blocks, a ping, usage at start and
#: end (cache reads and writes), CRLF line ends
ANTHROPIC_TOOLS = b"".join(
    b"event: " + kind + b"\r\ndata: " + data + b"\r\n\r\n"
    for kind, data in (
        (
            b"message_start",
            b'{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
            b'"model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,'
            b'"usage":{"input_tokens":10,"cache_creation_input_tokens":50,'
            b'"cache_read_input_tokens":100,"output_tokens":1}}}',
        ),
        (
            b"content_block_start",
            b'{"type":"content_block_start","index":0,"content_block":{"type":"thinking",'
            b'"thinking":"","signature":""}}',
        ),
        (b"ping", b'{"type":"ping"}'),
        (
            b"content_block_delta",
            b'{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta",'
            b'"thinking":"Two lookups."}}',
        ),
        (
            b"content_block_delta",
            b'{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta",'
            b'"signature":"c2lnbmF0dXJl"}}',
        ),
        (b"content_block_stop", b'{"type":"content_block_stop","index":0}'),
        (
            b"content_block_start",
            b'{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}',
        ),
        (
            b"content_block_delta",
            b'{"type":"content_block_delta","index":1,"delta":{"type":"text_delta",'
            b'"text":"Checking caf\xc3\xa9s"}}',
        ),
        (b"content_block_stop", b'{"type":"content_block_stop","index":1}'),
        (
            b"content_block_start",
            b'{"type":"content_block_start","index":2,"content_block":{"type":"tool_use",'
            b'"id":"toolu_a","name":"get_weather","input":{}}}',
        ),
        (
            b"content_block_delta",
            b'{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta",'
            b'"partial_json":""}}',
        ),
        (
            b"content_block_delta",
            b'{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta",'
            b'"partial_json":"{\\"city\\": "}}',
        ),
        (
            b"content_block_delta",
            b'{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta",'
            b'"partial_json":"\\"Paris\\"}"}}',
        ),
        (b"content_block_stop", b'{"type":"content_block_stop","index":2}'),
        (
            b"content_block_start",
            b'{"type":"content_block_start","index":3,"content_block":{"type":"tool_use",'
            b'"id":"toolu_b","name":"get_time","input":{}}}',
        ),
        (
            b"content_block_delta",
            b'{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta",'
            b'"partial_json":"{\\"tz\\": \\"CET\\"}"}}',
        ),
        (b"content_block_stop", b'{"type":"content_block_stop","index":3}'),
        (
            b"message_delta",
            b'{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},'
            b'"usage":{"output_tokens":30}}',
        ),
        (b"message_stop", b'{"type":"message_stop"}'),
    )
)

#: a Messages stream the provider broke off with an error event
ANTHROPIC_OVERLOADED = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_2","type":"message",'
    b'"role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,'
    b'"stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
    b"event: error\n"
    b'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)
