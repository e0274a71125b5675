"""Rate limits (in process or shared through Redis) and the named limits of the API."""
