"""Streaming uploads: request body → sniff → hash/count → storage → probe → row."""
