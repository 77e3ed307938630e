"""Every place a deployment still holds a user's id: the proof of an erasure (issue 16), shared by
tests/erasure and bench/erasure.

    found = await find_references(database_url, redis, namespace, media_settings, user_id)

- PostgreSQL: every column of every table in every schema of the database (information_schema, so a
  table or a service added later is scanned without anyone listing it): bigint columns equal to the id, bigint[] columns
  containing it, text/varchar/jsonb columns holding its decimal digits. bytea columns (the outboxes'
  protobuf payloads) are not read: they are events, kept by design for an hour after they are
  published (mesh.erasure says why).
- Redis: every key of the namespace (SCAN), its name and, read by its type, every member, field,
  value and stream entry, for the id's digits (a timeline member is zero-padded: still a substring).
- The media bucket and the export bucket (export_svc's zips, open uploads included): every key, for
  the id as a path segment.

A user id is a 64-bit time-ordered number (18-19 digits), so finding its digits inside other text by
chance is not a practical concern.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from export_svc.settings import ExportSettings
from media_svc.settings import MediaSettings
from media_svc.storage import admin_client

# Schemas that are PostgreSQL's own; every other schema of the database is scanned (each service's).
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
_TEXT_TYPES = {"text", "character varying", "jsonb", "json"}


@dataclass(frozen=True)
class Reference:
    store: str  # "postgres", "redis" or "bucket"
    where: str  # schema.table.column, a Redis key, a bucket key
    count: int
    ttl_seconds: int | None = None  # a Redis key's remaining time to live (None: none, or not Redis)

    def __str__(self) -> str:
        ttl = "" if self.ttl_seconds is None else f" (expires in {self.ttl_seconds} s)"
        return f"{self.store}: {self.where} x{self.count}{ttl}"


async def find_references(
    database_url: str, redis: Any, namespace: str, media: MediaSettings, user_id: int
) -> list[Reference]:
    """Every reference to `user_id` in the database, the namespace's Redis keys and the media and
    export buckets."""
    found = await asyncio.to_thread(_in_postgres, database_url, user_id)
    found += await _in_redis(redis, namespace, user_id)
    found += await asyncio.to_thread(_in_bucket, media, user_id)
    found += await asyncio.to_thread(_in_bucket, media, user_id, ExportSettings(namespace=namespace).bucket)
    return found


def _in_postgres(database_url: str, user_id: int) -> list[Reference]:
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    digits = f"%{user_id}%"
    found: list[Reference] = []
    with psycopg.connect(url, autocommit=True) as conn:
        columns = conn.execute(
            """
            SELECT c.table_schema, c.table_name, c.column_name, c.data_type, c.udt_name
              FROM information_schema.columns c
              JOIN information_schema.tables t USING (table_schema, table_name)
             WHERE c.table_schema <> ALL(%s) AND t.table_type = 'BASE TABLE'
             ORDER BY 1, 2, 3
            """,
            (list(_SYSTEM_SCHEMAS),),
        ).fetchall()
        for schema, table, column, data_type, udt in columns:
            name = sql.Identifier(schema, table)
            col = sql.Identifier(column)
            if data_type == "bigint":
                query = sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(name, col)
                value: Any = user_id
            elif data_type == "ARRAY" and udt == "_int8":
                query = sql.SQL("SELECT count(*) FROM {} WHERE %s = ANY({})").format(name, col)
                value = user_id
            elif data_type in _TEXT_TYPES or (data_type == "ARRAY" and udt in ("_text", "_varchar")):
                query = sql.SQL("SELECT count(*) FROM {} WHERE {}::text LIKE %s").format(name, col)
                value = digits
            else:
                continue
            row = conn.execute(query, (value,)).fetchone()
            if row and row[0]:
                found.append(Reference("postgres", f"{schema}.{table}.{column}", int(row[0])))
    return found


async def _in_redis(redis: Any, namespace: str, user_id: int) -> list[Reference]:
    needle = str(user_id)
    found: list[Reference] = []
    async for raw_key in redis.scan_iter(match=f"{namespace}:*", count=1000):
        key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
        hits = 1 if needle in key else 0
        kind = _text(await redis.type(key))
        values: list[Any] = []
        if kind == "string":
            values = [await redis.get(key)]
        elif kind == "hash":
            for field, value in (await redis.hgetall(key)).items():
                values += [field, value]
        elif kind == "zset":
            values = list(await redis.zrange(key, 0, -1))
        elif kind == "set":
            values = list(await redis.smembers(key))
        elif kind == "list":
            values = list(await redis.lrange(key, 0, -1))
        elif kind == "stream":
            for entry_id, fields in await redis.xrange(key):
                values.append(entry_id)
                for field, value in fields.items():
                    values += [field, value]
        hits += sum(1 for v in values if v is not None and needle in _text(v))
        if hits:
            ttl = await redis.ttl(key)
            found.append(Reference("redis", key, hits, ttl if ttl >= 0 else None))
    return found


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _in_bucket(media: MediaSettings, user_id: int, bucket: str | None = None) -> list[Reference]:
    """Keys of `bucket` (default: the media bucket; same store and credentials) naming the user, and
    multipart uploads still open under such keys."""
    client = admin_client(media)
    bucket = bucket or media.bucket
    if not client.bucket_exists(bucket):
        return []
    segment = f"/{user_id}/"
    keys = [
        item.object_name
        for item in client.list_objects(bucket, recursive=True)
        if item.object_name and segment in f"/{item.object_name}"
    ]
    uploads = [
        upload.object_name
        for upload in client._list_multipart_uploads(bucket).uploads
        if upload.object_name and segment in f"/{upload.object_name}"
    ]
    return [Reference("bucket", key, 1) for key in keys] + [
        Reference("bucket", f"{key} (open upload)", 1) for key in uploads
    ]
