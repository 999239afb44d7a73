"""hkjit's version and its cache-format version (bumped whenever an entry's layout or meaning changes)."""
__version__ = "0.1.0"
CACHE_FORMAT = 1
