"""The export's zip, written as a stream straight into a multipart upload: bounded memory whatever
the archive's size.

Python's zipfile writes to a stream it cannot seek (each entry's sizes and CRC follow its data in a
data descriptor, ZIP64 records appear when offsets pass 4 GiB), so the archive is produced in order
into `PartBuffer`; every time a full part (8 MiB by default) has accumulated, it is sent as the next
part of the upload before anything more is written. So a build holds at most one part plus one chunk
being added (1 MiB for photos), never a whole photo set or the whole archive: Mastodon's archives,
built whole before upload, failed above 2 GB. Photos are stored as they are (already compressed);
JSON is deflated. Measured (`python -m bench export`): a 114 MiB export took export_svc 11-12 MiB above
its idle memory.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from export_svc.storage import ExportStore


class PartBuffer:
    """What zipfile writes into: bytes waiting to be sent as parts. Not seekable, on purpose."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self.total = 0

    def write(self, data: bytes) -> int:
        self._pending += data
        self.total += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self._pending)

    def take(self, size: int) -> bytearray:
        """The first `size` bytes waiting (all of them if fewer), removed from the buffer. The part is
        the buffer itself, cut to size (only what follows it is copied): a part is never held twice."""
        part = self._pending
        self._pending = bytearray(part[size:])
        del part[size:]
        return part


class MultipartUpload:
    """One zip being uploaded: parts are sent in order as the archive fills them."""

    def __init__(self, store: ExportStore, key: str, upload_id: str, part_size: int) -> None:
        self._store = store
        self.key = key
        self.upload_id = upload_id
        self._part_size = part_size
        self._etags: list[str] = []

    async def send_full_parts(self, buffer: PartBuffer) -> None:
        while len(buffer) >= self._part_size:
            await self._send(buffer.take(self._part_size))

    async def finish(self, buffer: PartBuffer) -> None:
        """Sends what is left as the last part and completes the upload."""
        await self.send_full_parts(buffer)
        if len(buffer) or not self._etags:
            await self._send(buffer.take(len(buffer)))
        await self._store.complete_upload(self.key, self.upload_id, self._etags)

    async def _send(self, part: bytearray) -> None:
        etag = await self._store.upload_part(self.key, self.upload_id, len(self._etags) + 1, part)
        self._etags.append(etag)


class ArchiveWriter:
    """Entries added one after another; each `add_*` returns once the parts it filled are sent."""

    def __init__(self, upload: MultipartUpload) -> None:
        self._upload = upload
        self._buffer = PartBuffer()
        self._zip = zipfile.ZipFile(self._buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)

    async def add_text(self, name: str, text: str) -> None:
        with self._zip.open(name, "w") as entry:
            entry.write(text.encode())
        await self._upload.send_full_parts(self._buffer)

    async def add_json_array(self, name: str, items: AsyncIterable[dict[str, Any]]) -> int:
        """A JSON array written as its items arrive (one per line); how many there were."""
        count = 0
        entry = self._zip.open(name, "w", force_zip64=True)  # its size is not known in advance
        try:
            entry.write(b"[")
            async for item in items:
                entry.write((b",\n" if count else b"\n") + json.dumps(item, ensure_ascii=False).encode())
                count += 1
                await self._upload.send_full_parts(self._buffer)
            entry.write(b"\n]\n" if count else b"]\n")
        finally:
            entry.close()
        await self._upload.send_full_parts(self._buffer)
        return count

    async def add_json(self, name: str, value: dict[str, Any]) -> None:
        await self.add_text(name, json.dumps(value, ensure_ascii=False, indent=2) + "\n")

    async def add_file(self, name: str, chunks: AsyncIterator[bytes]) -> int:
        """A file stored as is (photos are compressed already), written chunk by chunk; its size."""
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_STORED
        size = 0
        entry = self._zip.open(info, "w", force_zip64=True)
        try:
            async for chunk in chunks:
                entry.write(chunk)
                size += len(chunk)
                await self._upload.send_full_parts(self._buffer)
        finally:
            entry.close()
        await self._upload.send_full_parts(self._buffer)
        return size

    async def finish(self) -> int:
        """Writes the central directory, sends the last part and completes the upload; the zip's size."""
        self._zip.close()
        await self._upload.finish(self._buffer)
        return self._buffer.total
