"""A question -> results: the question checked once, candidates drawn within the filters, channels fused and re-ranked,
over any store's view of an index."""
