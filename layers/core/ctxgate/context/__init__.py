"""The context engine: budgeted assembly, pins, chunked eviction with summaries, and recall of evicted turns."""
