"""The API's published contract: per-route specs and the OpenAPI 3.1 document built from them."""
