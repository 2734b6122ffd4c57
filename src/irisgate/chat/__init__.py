"""The chat app at /chat/: who may use it, the models it offers, conversations it keeps.

Chat turns are not handled here: the browser sends each turn to the gateway's own LLM
endpoint (`/v1/chat/completions` or `/v1/messages`, streamed), so a turn is an ordinary
request of the signed-in user (identity, grants, quotas, hooks, capture, cost).
"""
