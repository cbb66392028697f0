"""Ingest: the List Calls client (I/O edge), page decoding and the re-read tracker (pure)."""
