"""Budgets, wallet, rate limits and per-request ceilings: reserve before dispatch, settle after."""
