"""HTTP delivery: ranges, conditional requests, signed URLs, Content-Disposition."""
