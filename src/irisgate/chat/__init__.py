"""The chat app at /chat/: who may use it, the models it offers (and what they accept), the
conversations it keeps, and the connector tools a conversation may call.

A model round (`rounds`) is built in the picked model's API by that format's chat adapter
(gateway/formats/chatwire.py) and sent through the gateway in-process, so it is an ordinary
request of the signed-in user (identity, grants, quotas, hooks, capture, cost). When the
model calls tools, the browser runs the loop and irisgate runs each call (`tools`).
"""
