"""Device profiles (peak FLOP/s, memory, bandwidth, TDP) as YAML files, one per device."""
