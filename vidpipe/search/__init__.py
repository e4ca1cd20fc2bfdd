"""The query side of vidpipe: a query file in, the contract's ``search --json`` object out.

- `vidpipe.search.api`: ``search(case_dir, query, mode, top_k)`` and the modes, shared by the CLI
  and the UI; query file checks.
- `vidpipe.search.faces`, `.scenes`, `.near_dup`, `.video`: one module per mode.
- `vidpipe.search.query_prep`: the query, decoded and prepared in a sandboxed worker.
- `vidpipe.search.build`: the case's indexes, built from case.sqlite with the `indexer` library
  (`ensure_indexes`, `index_counts` for verify, removal for retention, refresh after ingest).
- `vidpipe.search.calibrate`: face threshold calibration on labelled photos.
- `vidpipe.search.media`: the rows every mode reads back for its hits.

Nothing is imported here, so the command-line parser can read the modes without loading search.
"""

MODES = ("face", "scene", "near-dup", "video")  # `vidpipe search --mode` (DESIGN.md section 2)
DEFAULT_TOP_K = 20
