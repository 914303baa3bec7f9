"""Widgets and windows; they read app state and call its slots, never the network."""
