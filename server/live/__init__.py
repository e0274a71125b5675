"""Live events: the bus that carries job and video events, and the WebSocket that serves them."""
