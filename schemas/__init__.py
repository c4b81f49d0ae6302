"""The city standard as code: canonical frame layouts, pandera models and data-quality rules."""
