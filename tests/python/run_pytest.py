"""Runs pytest on tests/python (CTest's python_tests); exit 77 (skipped) when pytest is missing."""
import sys

try:
    import pytest
except ImportError:
    print("SKIPPED: pytest is not installed (Debian: apt-get install python3-pytest; or pip install pytest)")
    sys.exit(77)

sys.exit(pytest.main(["-q", "-rs", "-p", "no:cacheprovider", sys.argv[1]]))
