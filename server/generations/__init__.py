"""Video generation: prompts (and reference images) turned into videos by providers."""
