"""asv benchmark suite: thin parameterised classes over the runners (asv imports every module here)."""
