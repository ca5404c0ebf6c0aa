"""Races: sessions that overlap calls on one target, judged by linearizability."""
