"""AbstractCache: what a user cache defines (``_serialize`` / ``_deserialize``, abstract) and
what every backend gives (``get``, ``set``, ``clear``: here they raise NotImplementedError), as
in dynamodb_cache 0.1.1."""
import typing as T
from abc import ABC, abstractmethod

VT = T.TypeVar("VT")


class AbstractCache(ABC, T.Generic[VT]):
    """List it second, after a backend: ``class MyCache(DynamodbBackend[V], AbstractCache[V])``."""

    @abstractmethod
    def _serialize(self, value: VT) -> bytes:
        """The bytes stored for ``value``."""

    @abstractmethod
    def _deserialize(self, value: bytes) -> VT:
        """The value that ``value`` (bytes from ``_serialize``) stands for."""

    def set(self, key: str, value: VT, expire: float = 0) -> None:
        """Stores ``value`` for ``expire`` seconds (0 = never expires)."""
        raise NotImplementedError

    def get(self, key: str) -> T.Optional[VT]:
        """The live value, or None."""
        raise NotImplementedError

    def clear(self) -> None:
        """Removes every entry."""
        raise NotImplementedError
