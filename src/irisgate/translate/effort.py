"""Reasoning effort (OpenAI's words) and thinking budgets (Anthropic's and Gemini's tokens).

One table both ways: an effort asks for the budget below; a budget reads as the smallest
effort whose budget covers it. The chat app (gateway/formats/chatwire.py) uses the same table.
"""

from __future__ import annotations

#: Anthropic-style thinking budgets per effort; max_tokens leaves ANSWER_TOKENS beyond it
THINKING_BUDGET: dict[str, int] = {"low": 2048, "medium": 8192, "high": 24576}
#: tokens left for the answer beyond the thinking budget when the client set no maximum
ANSWER_TOKENS = 4096
#: the smallest budget Anthropic accepts
MIN_BUDGET = 1024
#: every effort a client may ask for ("minimal" thinks as little as the provider allows)
EFFORTS = ("minimal", "low", "medium", "high")


def effort_of(budget: int) -> str:
    """The effort a thinking budget asks for."""
    for effort, tokens in THINKING_BUDGET.items():
        if budget <= tokens:
            return effort
    return "high"


def budget_of(effort: str) -> int:
    """The thinking budget of an effort ("minimal": the smallest there is)."""
    return THINKING_BUDGET.get(effort, MIN_BUDGET)
