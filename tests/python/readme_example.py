# The example of the dynamodb_cache 0.1.1 README, unchanged but for two lines of Meta: `host`
# (a local DynamoDB) and billing_mode written as the string PynamoDB's constant
# PAY_PER_REQUEST_BILLING_MODE holds (PynamoDB is not installed here: 0.1.1's README imports
# it from pynamodb.models, which works where PynamoDB is installed).
import os
import json
import dataclasses
from dataclasses import dataclass

from dynamodb_cache import DynamodbTable, DynamodbBackend, AbstractCache


class CacheTable(DynamodbTable):
    class Meta:
        table_name = "dynamodb-cache"
        region = "us-east-1"
        billing_mode = "PAY_PER_REQUEST"
        host = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]


CacheTable.create_table(wait=True)


@dataclass
class DatabaseCredential:
    host: str
    port: int
    database: str
    username: str
    password: str


class DatabaseCredentialCache(
    DynamodbBackend[DatabaseCredential],
    AbstractCache[DatabaseCredential],
):
    def _serialize(self, value: DatabaseCredential) -> bytes:
        return json.dumps(dataclasses.asdict(value)).encode("utf-8")

    def _deserialize(self, value: bytes) -> DatabaseCredential:
        return DatabaseCredential(**json.loads(value.decode("utf-8")))


cache = DatabaseCredentialCache(CacheTable)


def get_credential_from_aws_secret_manager() -> DatabaseCredential:
    print("read credential from aws secret manager")
    return DatabaseCredential(
        host="www.db.com",
        port=5432,
        database="mydatabase",
        username="alice",
        password="123456",
    )


def get_credential() -> DatabaseCredential:
    key = "my_db_credential"
    value = cache.get(key)
    if value is None:
        value = get_credential_from_aws_secret_manager()
        cache.set(key, value, expire=3600)
    return value


print(get_credential())
print(get_credential())
