"""The chat app at /chat/: who may use it, the models it offers (and what they accept), the
conversations it keeps, and the connector tools a conversation may call.

Chat turns are not handled here: the browser sends each turn to the gateway's own LLM
endpoint (`/v1/chat/completions` or `/v1/messages`, streamed), so a turn is an ordinary
request of the signed-in user (identity, grants, quotas, hooks, capture, cost). When the
model calls tools, the browser runs the loop and irisgate runs each call (`tools`).
"""
