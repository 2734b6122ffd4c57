"""Alerts: what raises them, how each is raised once, and where they are delivered.

- `signal.py`: what an observation says (`Signal`: an alert to raise, or one to clear).
- `watch.py`: `AlertWatch`, the one background task that turns the gateway's observations
  (quota balances after each sync, provider health, hook and export failures, the database
  and the spool, daily spend) into raised and cleared alerts, off the request path.
- `budgets.py`, `spikes.py`, `backlog.py`: the budget-threshold, spend-spike and
  export-backlog rules (pure functions, one query of the daily rollup, one index lookup).
- `table.py`: the `alerts`, `alert_reads` and `alert_deliveries` rows. An alert is inserted
  with `ON CONFLICT DO NOTHING` on (kind, subject, threshold, episode): several instances
  seeing the same crossing make one row, and only the instance whose insert made it queues
  the deliveries. Clearing (a bucket refilled below the threshold, a provider back) re-arms
  it: the next crossing is the next episode.
- `delivery.py`: `Deliveries`, the worker that claims due deliveries (safely across
  instances), sends them through `channels.py` and retries failures with exponential
  back-off up to a cap, then gives up and leaves the failure for admins to see.
"""
