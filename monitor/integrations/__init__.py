"""Plugging the monitor into aggregators people already run: reader and Miniflux."""
