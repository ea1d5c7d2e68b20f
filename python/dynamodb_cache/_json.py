"""The serializer of the JSON caches (JsonDict*/JsonList*): UTF-8 JSON, as 0.1.1 stores it."""
import json
import typing as T


class JsonValues:
    def _serialize(self, value: T.Any) -> bytes:
        return json.dumps(value).encode("utf-8")

    def _deserialize(self, value: bytes) -> T.Any:
        return json.loads(value.decode("utf-8"))
