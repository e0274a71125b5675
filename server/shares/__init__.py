"""Share links: a public player URL for one video, revocable at once."""
