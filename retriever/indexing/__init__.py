"""Building an index: notes -> chunks -> vectors -> a new generation, embedding only what is new (on this machine, or
over a Ray cluster)."""
