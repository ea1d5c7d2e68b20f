#!/usr/bin/python3
"""BatchGetItem for the canned endpoint (bench/canned/start-canned.sh): nginx passes it the
BatchGetItem requests over keep-alive HTTP/1.1 and answers everything else itself.

    batchget.py RUNDIR      listens on a free 127.0.0.1 port, written to RUNDIR/batchget.port

Each key asked for is answered with the canned GetItem's item under that key (so that a client
can match items to keys), none unprocessed, no ConsumedCapacity (as the canned GetItem), with
x-amz-crc32. Keys are cached with their item's JSON: the answer is joined, not encoded.
Bounded: request heads of 16 KiB, bodies of 1 MiB (BatchGetItem's 100 keys of 2 KiB fit).
"""
import asyncio
import json
import sys
import zlib

rundir = sys.argv[1]
canned = json.load(open(rundir + "/getitem-body.json"))["Item"]
item_cache = {}


def item_of(key):
    got = item_cache.get(key)
    if got is None:
        item = dict(canned)
        item["key"] = {"S": key}
        got = json.dumps(item, separators=(",", ":"))
        if len(item_cache) < 100000:
            item_cache[key] = got
    return got


def answer(body):
    req = json.loads(body)
    parts = []
    for table, ka in req["RequestItems"].items():
        items = ",".join(item_of(k["key"]["S"]) for k in ka["Keys"])
        parts.append(json.dumps(table) + ":[" + items + "]")
    return ('{"Responses":{' + ",".join(parts) + '},"UnprocessedKeys":{}}').encode()


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > 16384:
                break
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length > (1 << 20):
                break
            body = await reader.readexactly(length)
            try:
                out, status = answer(body), b"200 OK"
            except (ValueError, KeyError, TypeError, AttributeError):
                out = b'{"__type":"com.amazon.coral.validate#ValidationException","message":"bad request"}'
                status = b"400 Bad Request"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/x-amz-json-1.0\r\n"
                         b"x-amzn-RequestId: canned-batch\r\nx-amz-crc32: " +
                         str(zlib.crc32(out)).encode() + b"\r\nContent-Length: " +
                         str(len(out)).encode() + b"\r\n\r\n" + out)
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    writer.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0, limit=1 << 21)
    with open(rundir + "/batchget.port.tmp", "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    import os
    os.rename(rundir + "/batchget.port.tmp", rundir + "/batchget.port")
    async with server:
        await server.serve_forever()


asyncio.run(main())
