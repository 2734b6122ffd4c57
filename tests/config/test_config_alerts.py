"""The `alerts` section: what `irisgate config check` says about it (line and key path of
every problem), what a valid one becomes, and its secrets masked like the providers' keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from irisgate.config.schema import build_config
from irisgate.config.secrets import REDACTED, mask_text, unmask

BROKEN = """\
{
  "quotas": {"team": {"capacity": "$10", "rate": "$10/day"}},
  "alerts": {
    "budgets": {
      "team": [50, 0, "80"],
      "nobody": [80],
    },
    "spend_spike": {"multiple": 1},
    "channels": {
      "ops": {"type": "teams", "url": "https://example.com/hook"},
      "slack": {"type": "slack", "url": "hooks.slack.com/services/T/B/x"},
      "mail": {"type": "email", "to": ["not-an-address"], "min_severity": "loud"},
      "page": {"type": "webhook", "url": "https://example.com/p", "kinds": ["budgets"]},
    },
    "smtp": {"host": "smtp.example.com", "from": "irisgate@example.com", "username": "u"},
    "retry": {"first": "10m", "max": "1m", "attempts": 0},
    "sirens": true,
  },
}
"""


def test_config_check_names_every_problem_of_the_alerts_section(tmp_path: Path) -> None:
    path = tmp_path / "alerts.hujson"
    path.write_text(BROKEN, encoding="utf-8")
    checked = subprocess.run(
        [sys.executable, "-m", "irisgate", "config", "check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 1
    lines = (checked.stdout + checked.stderr).strip().splitlines()
    name = str(path)
    expected = [
        f"{name}:5: alerts.budgets.team[1]: must be a whole percentage from 1 to 1000, not 0",
        f"{name}:5: alerts.budgets.team[2]: must be a number, not '80'",
        f'{name}:6: alerts.budgets.nobody: bucket "nobody" is not defined in quotas',
        f"{name}:8: alerts.spend_spike.multiple: must be more than 1 and at most 1000, not 1.0",
        f'{name}:10: alerts.channels.ops.type: "teams" is not one of: webhook, slack, email',
        f"{name}:11: alerts.channels.slack.url: the literal value must be an absolute http(s) URL",
        f'{name}:12: alerts.channels.mail.to[0]: "not-an-address" is not an e-mail address',
        f'{name}:12: alerts.channels.mail.min_severity: "loud" is not one of: info, warning,'
        " critical",
        f'{name}:13: alerts.channels.page.kinds[0]: "budgets" is not one of: budget,'
        " spend_spike, provider, upstream_errors, hook, export, storage",
        f'{name}:15: alerts.smtp.password: is required with "username"',
        f"{name}:16: alerts.retry.max: must not be shorter than first (600 s)",
        f"{name}:16: alerts.retry.attempts: must be from 1 to 100, not 0",
        f"{name}:17: warning: alerts.sirens: unknown key, ignored (known keys: budgets,"
        " spend_spike, upstream_errors, providers, hooks, exports, storage, channels, smtp,"
        " retry)",
        f"{name}: 12 error(s)",
    ]
    assert sorted(lines) == sorted(expected)


VALID = """\
{
  "quotas": {"daily:<user>": {"capacity": "$5", "rate": "$5/day"}},
  "alerts": {
    // budget alerts at half, most and all of each person's daily budget
    "budgets": {"daily:<user>": [100, 50, 80]},
    "spend_spike": {"multiple": 4, "days": 14, "minimum": "$2"},
    "upstream_errors": false,
    "channels": {
      "ops": {"type": "slack", "url": "https://hooks.example.com/T000/B000/XXXX",
              "min_severity": "warning"},
      "finance": {"type": "email", "to": ["finance@example.com"], "kinds": ["budget"]},
    },
    "smtp": {"host": "smtp.example.com", "username": "irisgate",
             "password": "mail-secret", "from": "irisgate@example.com"},
  },
}
"""


def test_a_valid_alerts_section_and_its_masked_secrets() -> None:
    config, warnings = build_config(VALID, {})
    assert warnings == []
    alerts = config.alerts
    assert alerts.budgets == {"daily:<user>": (50, 80, 100)}
    assert alerts.spend_spike is not None and alerts.spend_spike.minimum_nanodollars == 2 * 10**9
    assert alerts.upstream_errors is None
    assert alerts.channels["ops"].wants("provider", "critical")
    assert not alerts.channels["ops"].wants("budget", "info")
    assert not alerts.channels["finance"].wants("provider", "critical")
    assert alerts.smtp is not None
    assert (alerts.smtp.port, alerts.smtp.security) == (587, "starttls")
    masked = mask_text(VALID)
    assert "XXXX" not in masked and "mail-secret" not in masked
    assert masked.count(f'"{REDACTED}"') == 2
    assert "// budget alerts at half" in masked  # comments are kept
    assert unmask(masked, VALID) == VALID  # saving the masked text keeps the secrets
