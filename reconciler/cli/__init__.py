"""The crontask command line."""
