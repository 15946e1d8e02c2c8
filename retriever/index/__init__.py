"""What an index is on disk: the manifest, generations, row files, token codes, the ANN and BM25 indexes, every file
checked on read."""
