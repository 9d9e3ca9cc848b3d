"""The sttool command line."""
