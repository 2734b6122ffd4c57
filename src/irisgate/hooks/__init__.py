"""Guardrail hooks: webhooks called before a request and told about it afterwards (§9).

- `plan`: which hooks fire for one caller and model, merged across grants, in chain order.
- `payload`: the `HookCallData` JSON (metadata block plus what `send` selects).
- `client`: one HTTP call to a hook with its auth and timeout.
- `runner`: the pre-request chain (allow / block / modify, fail policies) and the bounded
  outbox that delivers post-response events without delaying anyone.
"""
