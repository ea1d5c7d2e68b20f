import typing as T
from dynamodb_cache import DynamodbBackend, AbstractCache, DynamodbTable, JsonDictInMemoryCache


class Tab(DynamodbTable):
    class Meta:
        table_name = "t"


class IntCache(DynamodbBackend[int], AbstractCache[int]):
    def _serialize(self, value: int) -> bytes:
        return b"%d" % value

    def _deserialize(self, value: bytes) -> int:
        return int(value)


c = IntCache(Tab)
v: T.Optional[int] = c.get("k")
d = JsonDictInMemoryCache()
x: T.Optional[dict] = d.get("k")
bad: str = c.get("k")  # the one error mypy must report: get gives Optional[int]
