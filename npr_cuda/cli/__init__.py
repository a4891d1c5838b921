"""Command-line tools: npr-eval, npr-detect, npr-train, npr-demo (each also ``python -m``)."""
