import typing as T
from dynamodb_cache import DynamodbBackend, AbstractCache, DynamodbTable, GetOrSetResult, JsonDictInMemoryCache, Loaded


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
bad: str = c.get("k")  # an error mypy must report: get gives Optional[int]


def load_row() -> T.Union[int, Loaded[int]]:
    return Loaded.missing() if v is None else Loaded(v, expire=30)


plain: int = c.get_or_set("k", lambda: 1, 60)
maybe: T.Optional[int] = c.get_or_set("k", load_row, 60, cache_misses_for=30)
kept: T.Optional[int] = c.get_or_set("k", lambda: Loaded.uncached(2))
entry: GetOrSetResult = c.get_or_set_entry("k", load_row, 60)
bad_loaded: int = c.get_or_set("k", load_row)  # the other: a deciding loader's answer is Optional[int]
