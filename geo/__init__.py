"""gridwatch geography (网格地理): layers, validation, point location, area queries, generation.

A pure library: no faust import. Everything here is vectorised over numpy arrays and
shapely 2 geometry arrays so the pipeline can locate whole batches at once.
"""
