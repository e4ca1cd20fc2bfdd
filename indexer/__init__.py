"""A FAISS index library: ids and vectors in, nearest neighbours out, atomic files on disk.

It knows nothing of cases, evidence or vidpipe (tests/test_layers.py checks that it imports only
the standard library, numpy and faiss): what goes into an index, and what a database fingerprint
or a producer version is, the caller passes in (`vidpipe.search.build` for the case's indexes).

- `indexer.base`: the index contract (build/add/remove/search/range_search/save/load), atomic writes.
- `indexer.float_index`: face and scene embeddings, inner product: exact while small, IVF-Flat or
  IVF-PQ (re-ranked) above that, HNSW on request; recall measured at build time.
- `indexer.binary_index`: PDQ / pHash codes, Hamming distance.
- `indexer.store`: atomic files + manifest, checks on load, quarantine.
- `indexer.sharded_build`: train once, add shards, merge in memory or on disk.
- `indexer.bench`: build/search benchmarks on synthetic data.
"""
