"""Every error kind the engine raises reaches Python as its dynamodb_cache.errors class, with
kind and retryable (and ServiceError's name, status and request id)."""
import asyncio
import gc

import pytest

import common
from dynamodb_cache import _native, errors
from dynamodb_cache._base import _future
from conftest import BytesCache, stub_cache, table_class


def check(exc, cls, kind, retryable):
    assert type(exc) is cls, repr(exc)
    assert isinstance(exc, errors.Error)
    assert exc.kind == kind and exc.retryable is retryable, (exc.kind, exc.retryable)


def test_invalid_argument(table):
    with pytest.raises(errors.InvalidArgumentError) as e:
        BytesCache(table).get("")
    check(e.value, errors.InvalidArgumentError, "invalid_argument", False)
    with pytest.raises(errors.InvalidArgumentError):
        BytesCache(table).add("k", b"v", expire=-1)  # set takes it, as 0.1.1 (test_api)


def test_codec(table):
    common.ddb().put_item(TableName=table.Meta.table_name, Item={
        "key": {"S": "bad"}, "value": {"B": b"not zstd"}, "fmt": {"N": "2"}, "expire": {"N": "0"},
        "update_ts": {"N": "0"}})
    with pytest.raises(errors.CodecError) as e:
        BytesCache(table).get("bad")
    check(e.value, errors.CodecError, "codec", False)


def test_config():
    with pytest.raises(errors.ConfigError) as e:
        _native.Client(region="us-east-1", endpoint="ftp://127.0.0.1:1")
    check(e.value, errors.ConfigError, "config", False)


def test_credentials(monkeypatch, tmp_path):
    for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
              "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
              "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(errors.CredentialsError) as e:
        stub_cache(common.ENDPOINT, operation_timeout=5).get("k")
    assert e.value.kind == "credentials"


def test_connect():
    with pytest.raises(errors.ConnectError) as e:
        stub_cache("http://127.0.0.1:1").get("k")
    check(e.value, errors.ConnectError, "transport", True)
    assert e.value.request_sent is False
    assert isinstance(e.value, errors.TransportError)


def test_certificate(tmp_path):
    # An https server whose self-signed certificate no CA vouches for: final, not retried, and
    # the request never left (the handshake failed first).
    import ssl
    import subprocess
    from stub_server import Stub
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem"), "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    s = Stub(ssl_context=ctx)
    try:
        with pytest.raises(errors.CertificateError) as e:
            stub_cache(s.url, max_attempts=3).get("k")
        check(e.value, errors.CertificateError, "transport", False)
        assert isinstance(e.value, errors.TransportError) and isinstance(e.value, ConnectionError)
        assert e.value.request_sent is False
        assert s.requests == 0
    finally:
        s.close()


def test_transport_and_unknown_outcome(stub):
    stub.reset = True
    cache = stub_cache(stub.url)
    with pytest.raises(errors.TransportError) as e:
        cache.get("k")
    check(e.value, errors.TransportError, "transport", True)
    assert e.value.request_sent is True
    # add() must not apply twice: after a lost answer it reads the item back, which fails too.
    with pytest.raises(errors.UnknownOutcomeError) as e:
        cache.add("k", b"v", 60)
    assert e.value.kind == "unknown_outcome"


def test_timeout(stub):
    stub.hang = True
    with pytest.raises(errors.TimeoutError) as e:
        stub_cache(stub.url, operation_timeout=0.5).get("k")
    check(e.value, errors.TimeoutError, "timeout", True)


@pytest.mark.parametrize("status,name,cls,kind,retryable", [
    (400, "ThrottlingException", errors.ThrottlingError, "throttling", True),
    (500, "InternalServerError", errors.ServiceError, "service_transient", True),
    (400, "ValidationException", errors.ServiceError, "service", False),
    (400, "ConditionalCheckFailedException", errors.ConditionFailedError, "condition_failed", False),
])
def test_service(stub, status, name, cls, kind, retryable):
    stub.error(status, name)
    with pytest.raises(errors.ServiceError) as e:
        stub_cache(stub.url).get("k")
    check(e.value, cls, kind, retryable)
    assert (e.value.name, e.value.status, e.value.request_id) == (name, status, "REQ-1234")
    assert "stub says no" in e.value.service_message


def test_resource_not_found():
    with pytest.raises(errors.ServiceError) as e:
        BytesCache(table_class("no-such-table")).get("k")
    check(e.value, errors.ResourceNotFoundError, "resource_not_found", False)
    assert e.value.name == "ResourceNotFoundException" and e.value.table == "no-such-table"
    assert "create_table(wait=True)" in str(e.value)


def test_protocol(stub):
    stub.body = b"this is not json"
    with pytest.raises(errors.ProtocolError) as e:
        stub_cache(stub.url).get("k")
    assert e.value.kind == "protocol"


def test_wrong_type(table):
    c = BytesCache(table)
    c.set("v", b"x")
    with pytest.raises(errors.WrongTypeError) as e:
        c.incr("v")
    check(e.value, errors.WrongTypeError, "wrong_type", False)


def test_overloaded_and_cancelled(stub):
    stub.hang = True

    async def go():
        cache = stub_cache(stub.url, max_in_flight=1, fail_when_full=True, operation_timeout=20)
        native = cache._native
        del cache
        # The pending get holds no reference to the cache or its backend (a coroutine of
        # get_async would hold the cache in its frame).
        first = _future(lambda cb: native.get_async("a", cb))
        await asyncio.sleep(0.1)
        with pytest.raises(errors.OverloadedError) as e:
            await _future(lambda cb: native.get_async("b", cb))
        check(e.value, errors.OverloadedError, "overloaded", True)
        del native  # the last reference to its own client: the pending get is cancelled
        gc.collect()
        with pytest.raises(errors.CancelledError) as e:
            await asyncio.wait_for(first, 5)
        check(e.value, errors.CancelledError, "cancelled", False)

    asyncio.run(go())
