"""Datasets: readers (bytes to arrays), preparation (split, standardize) and sources."""
