"""mypy sees the package's type hints (py.typed, caches generic in their value type): a program
using the API type-checks, and the wrong uses are reported."""
import os
import subprocess
import sys


def test_mypy_checks_the_api():
    prog = os.path.join(os.path.dirname(__file__), "typing", "uses_types.py")
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull, prog],
                         capture_output=True, text=True, timeout=300, cwd="/")
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, out.stdout + out.stderr
    assert 'uses_types.py:22: error: Incompatible types in assignment (expression has type "Optional[int]", ' \
           'variable has type "str")' in errors[0]
    # A plain loader's get_or_set gives the value's type; a loader that may say Loaded.missing()
    # gives Optional of it.
    assert 'uses_types.py:33: error: Incompatible types in assignment (expression has type "Optional[int]", ' \
           'variable has type "int")' in errors[1]
