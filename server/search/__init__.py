"""Full-text search of a user's videos: filters, facets, suggestions."""
