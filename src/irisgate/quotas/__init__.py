"""Budgets that hold: token buckets in dollars, enforced before the upstream call.

- `charges`: which buckets (and overdraft chains) a request charges.
- `estimate`: what a request may cost, reserved at admission.
- `ledger`: balances in memory, leased from the database, settled after the answer.
- `gate`: the pipeline stage built from the above.
- `refill`, `amounts`: the arithmetic of refill and of dollar amounts at the API.
- `ratelimits`, `ratesync`, `rategate`: rate limits (requests or tokens per period, requests
  in flight) counted in memory, shared between instances in the background, and their stage.

The database side (rows, leases, the audit log) is `irisgate.quotas.balances`.
"""
