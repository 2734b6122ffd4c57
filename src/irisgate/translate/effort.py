"""Reasoning effort and thinking budgets: one scale for the APIs that name a level (OpenAI's
`reasoning.effort`, Gemini's `thinkingLevel`) and those that give a budget in tokens
(Anthropic's and Converse's `budget_tokens`, Gemini's `thinkingBudget`)."""

from __future__ import annotations

#: the thinking budget (tokens) that stands for each effort level
BUDGETS: dict[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
EFFORTS = frozenset(BUDGETS)


def effort_for(budget: int) -> str | None:
    """The effort level nearest a budget in tokens; None for 0 (no thinking)."""
    if budget <= 0:
        return None
    for effort, top in BUDGETS.items():
        if budget <= top:
            return effort
    return "high"


def budget_for(effort: str | None, budget: int | None) -> int | None:
    """The budget a request gave, else the one its effort stands for, else None."""
    if budget is not None:
        return budget
    return BUDGETS.get(effort) if effort is not None else None
