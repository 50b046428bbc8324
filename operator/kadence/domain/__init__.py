"""Kadence's pure core: models, cron maths, policies and errors. No I/O, no frameworks."""
