"""Config and clients for the Google and AWS end-to-end tests (test_e2e_google, _bedrock).

These gateways run in `dev` identity mode: the official Google and AWS SDKs cannot bind a
chosen source address, so the caller is the single dev user, granted provider by provider
(the `restricted` provider's models stay ungranted, for the 403 cases).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.config
import genai_prices
from google import genai
from google.genai import types as genai_types
from google.oauth2.credentials import Credentials

from irisgate.testing.server import IrisgateServer

GEMINI_KEY = "AIza-upstream-gemini-secret"
EXPRESS_KEY = "AQ.upstream-vertex-express-secret"
BEDROCK_KEY = "ABSK-upstream-bedrock-api-key"
AWS_ACCESS_KEY = "AKIDEXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AWS_SESSION = "FwoGZXIvYXdzEXAMPLE-session-token"
EXPECTED_TEXT = " ".join(f"tok{i}" for i in range(20))
BEDROCK_HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
BEDROCK_SONNET = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
BEDROCK_MISTRAL = "mistral.mistral-large-2402-v1:0"  # its bodies carry no usage
VERTEX_CLAUDE = "claude-sonnet-4-5@20250929"
PLACEHOLDER_PROJECT = "_aperture_auto_vertex_project_id_"
PLACEHOLDER_REGION = "_aperture_auto_vertex_region_"


def cloud_config(
    upstream: str,
    keyfile: str,
    refresh_keyfile: str,
    burst_keyfile: str | None = None,
    **extra: Any,
) -> str:
    providers: dict[str, Any] = {
        "gemini": {
            "baseurl": upstream,
            "apikey": GEMINI_KEY,
            "authorization": "x-goog-api-key",
            "models": ["gemini-2.5-flash", "gemini-2.5-pro"],
            "compatibility": {"gemini_generate_content": True},
        },
        "vertex": {
            "baseurl": upstream,
            "apikey": "keyfile::" + keyfile,
            "models": ["gemini-2.5-pro", VERTEX_CLAUDE],
            "compatibility": {"google_generate_content": True, "google_raw_predict": True},
        },
        "vertex-refresh": {
            "baseurl": upstream,
            "apikey": "keyfile::" + refresh_keyfile,
            "models": ["gemini-2.0-flash"],
            "compatibility": {"google_generate_content": True},
        },
        "vertex-burst": {
            "baseurl": upstream,
            "apikey": "keyfile::" + (burst_keyfile or refresh_keyfile),
            "models": ["gemini-2.5-flash-image"],
            "compatibility": {"google_generate_content": True},
        },
        "vertex-express": {
            "baseurl": upstream,
            "apikey": EXPRESS_KEY,
            "authorization": "x-goog-api-key",
            "models": ["gemini-2.5-flash-lite"],
            "compatibility": {"google_generate_content": True},
        },
        "bedrock": {
            "baseurl": upstream,
            "apikey": BEDROCK_KEY,
            "models": [
                BEDROCK_HAIKU,
                "us.anthropic.claude-unknown-9-v1:0",
                BEDROCK_MISTRAL,
                "mistral.mistral-unknown-9-v1:0",
            ],
            "compatibility": {"bedrock_model_invoke": True, "bedrock_converse": True},
            "cost_basis": "bedrock-us",
        },
        "bedrock-signed": {
            "baseurl": upstream,
            "apikey": "sigv4::"
            + json.dumps(
                {
                    "access_key_id": AWS_ACCESS_KEY,
                    "secret_access_key": AWS_SECRET,
                    "session_token": AWS_SESSION,
                    "region": "eu-west-1",
                }
            ),
            "models": [BEDROCK_SONNET],
            "compatibility": {"bedrock_model_invoke": True, "bedrock_converse": True},
            "cost_basis": "bedrock-eu",
        },
        "restricted": {
            "baseurl": upstream,
            "apikey": GEMINI_KEY,
            "authorization": "x-goog-api-key",
            "models": ["gemini-secret", "anthropic.claude-secret-v1:0"],
            "compatibility": {"gemini_generate_content": True, "bedrock_converse": True},
        },
        **extra,
    }
    granted = [p for p in providers if p != "restricted"]
    grants = [
        {
            "src": ["dev@localhost"],
            "app": {
                "tailscale.com/cap/aperture": [
                    {"role": "admin"},
                    *({"models": f"{p}/**"} for p in granted),
                ]
            },
        }
    ]
    return json.dumps({"providers": providers, "grants": grants}, indent=2)


def gemini_client(gw: IrisgateServer, api_version: str = "v1beta") -> genai.Client:
    options = genai_types.HttpOptions(base_url=gw.url, api_version=api_version)
    return genai.Client(api_key="client-placeholder-key", http_options=options)


def vertex_client(gw: IrisgateServer) -> genai.Client:
    """google-genai in Vertex mode with Aperture's placeholders for project and region."""
    options = genai_types.HttpOptions(base_url=gw.url, api_version="v1")
    return genai.Client(
        vertexai=True,
        project=PLACEHOLDER_PROJECT,
        location=PLACEHOLDER_REGION,
        credentials=Credentials(token="client-placeholder-token"),
        http_options=options,
    )


def bedrock_client(gw: IrisgateServer) -> Any:
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=gw.url + "/bedrock",
        aws_access_key_id="client-placeholder",
        aws_secret_access_key="client-placeholder",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )


def nanodollars(provider_id: str, model: str, **usage: int) -> int:
    price = genai_prices.calc_price(genai_prices.Usage(**usage), model, provider_id=provider_id)
    return int(price.total_price * 1_000_000_000)
