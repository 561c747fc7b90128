"""The embedded local cloud."""
