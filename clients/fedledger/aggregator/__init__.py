"""The aggregator: verifies committed updates, aggregates them and attests the result."""
