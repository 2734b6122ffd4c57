"""Usage export: request records leave irisgate for a team's own storage.

- `records`: one stored request (metrics row + capture) as an export record (`ver` 2, the
  fields of Aperture's S3 export), and the object formats (zstd CBOR sequence, gzip JSON
  Lines, Parquet).
- `cursor`: which records are exported, kept in the database so that every record is
  exported exactly once across restarts, outages and crashes.
- `s3`: the background worker that uploads batches to any S3-compatible bucket.
"""
