"""Shared fixtures of the Python package's tests: run them under scripts/with-dynalite, with
the package installed (scripts/install-python). They import the installed package, never
python/ in the checkout."""
import itertools
import os
import sys

import pytest

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", "")
if not ENDPOINT.startswith("http://127.0.0.1:"):
    sys.exit("these tests need a loopback local DynamoDB: run them under scripts/with-dynalite")

# The boto3 re-creation of dynamodb_cache 0.1.1 (py_set / py_get) and its helpers.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "interop"))

import dynamodb_cache  # noqa: E402
from dynamodb_cache import DynamodbTable  # noqa: E402

_tables = itertools.count()


def table_class(name):
    class Table(DynamodbTable):
        class Meta:
            table_name = name
            region = "us-east-1"
            host = ENDPOINT
            billing_mode = "PAY_PER_REQUEST"
    return Table


@pytest.fixture
def table():
    """A fresh table (its class), dropped afterwards."""
    t = table_class(f"py-test-{os.getpid()}-{next(_tables)}")
    t.create_table(wait=True)
    yield t
    t.delete_table()


@pytest.fixture
def stub():
    from stub_server import Stub
    s = Stub()
    yield s
    s.close()


class BytesCache(dynamodb_cache.DynamodbBackend[bytes], dynamodb_cache.AbstractCache[bytes]):
    def _serialize(self, value):
        return value

    def _deserialize(self, value):
        return value


def stub_cache(url, **options):
    class T(DynamodbTable):
        class Meta:
            table_name = "stub"
            region = "us-east-1"
            host = url
    options.setdefault("max_attempts", 1)
    return BytesCache(T, **options)
