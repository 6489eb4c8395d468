"""coimprove: AI research workflows with mandatory, measured human checkpoints."""
