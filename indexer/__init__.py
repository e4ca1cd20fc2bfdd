"""FAISS indexes and search over a case.

- `indexer.base`: the index contract (build/add/remove/search/range_search/save/load).
- `indexer.float_index`: face and scene embeddings, inner product: exact while small, IVF-Flat or
  IVF-PQ (re-ranked) above that, HNSW on request; recall measured at build time.
- `indexer.binary_index`: PDQ / pHash codes, Hamming distance.
- `indexer.store`: atomic files + manifest, checks on load, quarantine.
- `indexer.build`: `ensure_indexes` (load or rebuild from case.sqlite), `index_counts` (for verify).
- `indexer.search`: `search(case_dir, query, mode, top_k)`, shared by the CLI and the UI.
- `indexer.calibrate`: face threshold calibration on labelled photos.
"""
