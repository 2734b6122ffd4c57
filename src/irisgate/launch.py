"""`irisgate launch AGENT [ARGS...]`: run a coding agent set up for an irisgate gateway.

Like Aperture's CLI launcher: ask the gateway which providers the caller may use
(`GET /api/providers`: their API formats, leaving out disabled ones) and which models
(`GET /v1/models`, only those the caller is granted), pick a model the agent can use (the
first, or `--model`), set the agent up (`irisgate.agentsetup`: environment variables, a
temporary settings folder where the agent needs one, removed afterwards), run it with the
remaining arguments and return its exit code. `--print` shows the setup instead.

The gateway knows the caller by network identity, like every other client. Off the tailnet
(or with a gateway in identity mode `keys`), `--key` or `IRISGATE_API_KEY` gives an irisgate
API key: launch sends it to read the catalog and hands it to the agent as its API key.
`--print` shows it as `$IRISGATE_API_KEY`, never the secret.
"""

from __future__ import annotations

import io
import json
import shlex
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from irisgate.agentsetup import AGENTS, PLACEHOLDER_KEY, Agent, Setup, choose, setup

#: where the gateway is when neither --gateway nor IRISGATE_GATEWAY says: Aperture's
#: convention, the tailnet machine named `ai`
DEFAULT_GATEWAY = "http://ai"
#: the most launch reads of one gateway answer (a catalog of thousands of models fits)
MAX_ANSWER_BYTES = 4 * 1024 * 1024
TIMEOUT_S = 10.0
_TEMP_PLACEHOLDER = "<temporary folder>"


class LaunchError(Exception):
    """Launch cannot go on; `str(exc)` says why, for the person who ran it."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A setup made concrete for one run: the variables launch adds, the temporary files
    (paths under the run's folder, or shown under a placeholder) and the command line."""

    setup: Setup
    env: dict[str, str]  # what launch adds to the environment
    writes: tuple[tuple[Path | str, str], ...]  # (path, content) of each temporary file
    argv: tuple[str, ...]


def offered_models(
    gateway: str, key: str | None = None
) -> tuple[dict[str, list[str]], set[tuple[str, str]]]:
    """API format -> the models the caller may use through it, asking `gateway` (with the
    API key `key`, when given); and the (API format, model) pairs only translation reaches."""
    providers = _get_json(gateway, "/api/providers", key)
    listed = _get_json(gateway, "/v1/models", key)
    if not isinstance(providers, list) or not isinstance(listed, dict):
        raise LaunchError(f"{gateway} did not answer like an irisgate or Aperture gateway")
    granted: dict[str, list[str]] = {}
    for entry in listed.get("data") or ():
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            granted.setdefault(str(entry.get("owned_by", "")), []).append(entry["id"])
    offered: dict[str, list[str]] = {}
    direct: set[tuple[str, str]] = set()
    for provider in providers:
        if not isinstance(provider, dict) or provider.get("disabled"):
            continue
        mine = granted.get(str(provider.get("id", "")), [])
        compatibility = provider.get("compatibility")
        flags = compatibility if isinstance(compatibility, dict) else {}
        translated = provider.get("translated_from")
        reached = [f for f, accepted in flags.items() if accepted is True]
        direct.update((flag, model) for flag in reached for model in mine)
        if isinstance(translated, list):  # through translation (docs/translation.md)
            reached.extend(f for f in translated if isinstance(f, str))
        for flag in reached:
            models = offered.setdefault(flag, [])
            models.extend(m for m in mine if m not in models)
    only_translated = {(f, m) for f, models in offered.items() for m in models} - direct
    return offered, only_translated


def _get_json(gateway: str, path: str, key: str | None = None) -> Any:
    url = gateway.rstrip("/") + path
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    # http(s) only: `plan` checked the gateway's scheme
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:  # noqa: S310
            data = answer.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise LaunchError(f"{url} answered HTTP {exc.code}: {_error_text(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LaunchError(f"cannot reach {url}: {reason}") from None
    if len(data) > MAX_ANSWER_BYTES:
        raise LaunchError(f"{url} answered more than {MAX_ANSWER_BYTES} bytes")
    try:
        return json.loads(data)
    except ValueError:
        raise LaunchError(f"{url} did not answer JSON") from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    body = exc.read(4096).decode("utf-8", "replace")
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return body.strip()[:200] or exc.reason
    message = error.get("message") if isinstance(error, dict) else error
    return str(message)[:200]


def plan(
    agent_id: str,
    gateway: str,
    model: str | None,
    args: Sequence[str],
    folder: Path | None,
    *,
    key: str | None = None,
) -> Plan:
    """How to run `agent_id` against `gateway` with `args`; files under `folder` when given;
    `key`: the irisgate API key the agent sends (a placeholder when None)."""
    agent = AGENTS.get(agent_id)
    if agent is None:
        raise LaunchError(f"unknown agent {agent_id!r} (known: {', '.join(AGENTS)})")
    if not gateway.startswith(("http://", "https://")):
        raise LaunchError(f"--gateway must be an http(s) URL, not {gateway!r}")
    offered, translated = offered_models(gateway, key)
    chosen = choose(agent, offered, model)
    if chosen is None:
        raise LaunchError(_nothing_usable(agent, offered, model))
    found = setup(agent, *chosen, gateway, key or PLACEHOLDER_KEY, translated=chosen in translated)
    env = dict(found.env)
    writes: list[tuple[Path | str, str]] = []
    base: Path | str = folder if folder is not None else _TEMP_PLACEHOLDER
    for file in found.files:
        if not file.launch_var:
            continue
        if not file.launch_relative:
            env[file.launch_var] = file.content
            continue
        env[file.launch_var] = str(base)
        target = (
            base / Path(file.launch_relative)
            if isinstance(base, Path)
            else (f"{base}/{file.launch_relative}")
        )
        writes.append((target, file.content))
    return Plan(found, env, tuple(writes), (agent.program, *found.launch_args, *args))


def _nothing_usable(agent: Agent, offered: Mapping[str, Sequence[str]], model: str | None) -> str:
    usable = sorted({m for flag in agent.flags for m in offered.get(flag, ())})
    if model is not None and usable:
        return f"{agent.title} cannot use {model!r} here; models it can use: {', '.join(usable)}"
    return (
        f"no model you may use speaks the API {agent.title} needs"
        f" ({' or '.join(agent.flags)}); ask an administrator for a grant"
    )


def describe(found: Plan, out: TextIO) -> None:
    """Write the plan as shell text: exports, temporary files, the command."""
    agent = found.setup.agent
    out.write(f"# irisgate launch {agent.id}: {found.setup.model} ({found.setup.flag})\n")
    for name, value in found.env.items():
        out.write(f"export {name}={shlex.quote(value)}\n")
    for path, content in found.writes:
        out.write(f"# {path}\n{content}")
        if not content.endswith("\n"):
            out.write("\n")
    out.write(shlex.join(found.argv) + "\n")


def run(found: Plan, environ: Mapping[str, str]) -> int:
    """Write the temporary files, run the agent in the foreground, return its exit code."""
    program = shutil.which(found.argv[0], path=environ.get("PATH"))
    if program is None:
        agent = found.setup.agent
        raise LaunchError(f"{agent.program} is not installed (npm install -g {agent.package})")
    for path, content in found.writes:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    child = subprocess.Popen(  # noqa: S603 (the agent the person asked for)
        [program, *found.argv[1:]], env={**environ, **found.env}
    )
    # the agent owns the terminal: Ctrl-C is its to handle, launch only waits for it
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def main(
    agent_id: str,
    args: Sequence[str],
    *,
    gateway: str,
    model: str | None,
    show: bool,
    out: TextIO,
    environ: Mapping[str, str],
    key: str | None = None,
) -> int:
    """`irisgate launch`: the agent's exit code (0 after `show`); raises LaunchError."""
    if show:
        text = io.StringIO()
        describe(plan(agent_id, gateway, model, args, None, key=key), text)
        shown = text.getvalue()
        out.write(shown.replace(key, "$IRISGATE_API_KEY") if key else shown)
        return 0
    folder = Path(tempfile.mkdtemp(prefix="irisgate-launch-"))  # private: mode 0700
    try:
        return run(plan(agent_id, gateway, model, args, folder, key=key), environ)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def gateway_from(flag: str | None, environ: Mapping[str, str]) -> str:
    """--gateway, else IRISGATE_GATEWAY, else DEFAULT_GATEWAY."""
    return flag or environ.get("IRISGATE_GATEWAY") or DEFAULT_GATEWAY
