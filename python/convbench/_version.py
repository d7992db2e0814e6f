"""The package version (pyproject.toml's; tests/test_docs.py checks they agree),
in a module of its own so that any module may read it without importing the
package's __init__."""
__version__ = "0.1.0"
