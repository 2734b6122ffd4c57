"""Commands an operator runs besides `serve`: `db upgrade`, `db check` and `doctor`.

Each reads the same settings (flags and `IRISGATE_*` variables) as `serve`, prints what it
found one line at a time, and ends with an exit code a deploy script can act on.
"""
