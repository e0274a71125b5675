"""Administration endpoints: accounts' quotas and roles."""
