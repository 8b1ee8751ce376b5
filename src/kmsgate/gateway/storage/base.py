"""The ``Storage`` seam: where the gateway keeps buckets of encrypted objects, and its typed errors.

A backend stores opaque bytes (AWS Encryption SDK messages) under a bucket name and an object
key that the gateway has already validated (see ``kmsgate.gateway.keys``; bucket names are
checked here, by ``validate_bucket_name``). Next to each object it keeps an opaque metadata
blob of at most ``MAX_METADATA_BYTES`` (the gateway's encrypted Content-Type and
``x-amz-meta-*``). Contract every backend keeps:

* Buckets: ``create_bucket`` refuses an existing name (``BucketAlreadyExists``);
  ``delete_bucket`` refuses a bucket that holds objects (``BucketNotEmpty``) and, as S3 does,
  aborts the bucket's in-progress multipart uploads instead of counting them as content.
  ``list_buckets`` is sorted by name. Per-bucket configuration documents (``encryption``, ...)
  are small opaque blobs, at most ``MAX_BUCKET_CONFIG_BYTES``. Any operation on a missing
  bucket raises ``NoSuchBucket`` (a write whose declared ``length`` is small may raise it at
  ``commit`` instead of ``open_write``).
* Writes stream through an ``ObjectWriter``: ``write(chunk)`` any number of times, then
  exactly one of ``commit()`` or ``abort()``. Memory held by a writer is bounded by a
  backend constant, never by the object size. ``open_write(length=n)`` and
  ``open_part_write(length=n)`` say that exactly ``n`` bytes will be written: a backend may send
  them on as they come, and refuse a write past ``n`` or a commit short of it.
* ``commit()`` returning means durable and atomic: a reader sees either the previous object
  or the complete new one (bytes and metadata), never a prefix or a mix. ``commit(metadata=m)``
  replaces the blob given at ``open_write`` (for metadata known only once the bytes are
  written, such as their digest); it is committed atomically with the bytes all the same, and so is
  ``commit(sealed_etag=e)``. ``abort()`` leaves
  nothing behind, and so does a writer whose ``write``/``commit`` raised (the backend cleans
  up before raising). Of two writers of one key, the later commit wins, whole.
* The sealed ETag (``StoredObject.sealed_etag``, at most ``MAX_SEALED_ETAG_BYTES``, empty for
  objects stored without one) is an opaque blob kept with an object version where a listing
  reads it: ``open_read`` returns it with the version it reads, so a listing that reads an
  object's header gets the ETag of that same version (``kmsgate.gateway.listing_etag``).
* The catalog key: ``read_catalog_key`` returns the wrapped blob ``create_catalog_key`` stored,
  or ``None``; ``create_catalog_key(blob)`` stores it unless one is there already and returns
  the one that is kept (of two gateways creating it at once, both get the first), outside every
  bucket so no listing shows it.
* Reads stream through an ``ObjectReader`` over the half-open byte range ``[start, end)``
  of the stored bytes; ``end`` past the object's size is clamped to the size.
* Listing (``list_objects``) has S3's semantics: keys in UTF-8 byte order (the code point
  order of ``str``), restricted to ``prefix``, strictly after ``start_after``; with a
  ``delimiter``, keys holding it after the prefix roll up into one common prefix (up to and
  including the first delimiter), returned once and counted once towards ``max_keys``. A
  common prefix at or before ``start_after`` is not returned again, so continuing from a page's
  ``next_marker`` (its last key or common prefix) skips the rest of that group.
* Multipart: ``create_upload`` gives an upload id; parts ``1..MAX_PART_NUMBER`` are written
  through ``open_part_write`` in any order, a part number written again replaces the part;
  ``complete_upload`` makes the object, the named parts' stored bytes concatenated (part
  numbers strictly ascending, as S3 requires), visible atomically and replaces any previous
  version; the parts not named are discarded. The object's metadata blob is the one given to
  ``complete_upload`` (``metadata``), else the upload's; its sealed ETag is ``sealed_etag``. A
  part may carry its own opaque blob
  (``PartWriter.commit(metadata)``, at most ``MAX_PART_METADATA_BYTES``), which
  ``list_parts`` returns with it until the upload ends; ``upload_metadata`` returns the
  upload's blob. ``StoredObject.part_sizes`` then gives the
  stored size of each part, so a reader can find part boundaries. ``abort_upload`` and
  ``expire_uploads`` leave nothing of an upload behind. A backend may refuse parts but the last
  smaller than ``MIN_PART_BYTES`` (the s3 backend's upstream does).
* A missing object raises ``ObjectNotFound``, a missing upload ``NoSuchUpload``; anything else
  that goes wrong in the backend raises ``StorageError`` (the gateway answers 502), a write
  that found no space left ``StorageFull`` (507). Messages
  never contain object contents, metadata or credentials.
"""

from __future__ import annotations

import errno
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

READ_CHUNK_BYTES = 256 * 1024
"""Preferred size of the chunks a reader yields (a backend may yield smaller ones)."""
MAX_METADATA_BYTES = 64 * 1024
"""Largest opaque metadata blob stored with an object or upload."""
MAX_SEALED_ETAG_BYTES = 128
"""Largest sealed ETag kept with an object."""
MAX_CATALOG_KEY_BYTES = 4096
"""Largest wrapped catalog key (a KMS ciphertext blob)."""
MAX_PART_METADATA_BYTES = 1024
"""Largest opaque blob kept with one part of an upload."""
MAX_BUCKET_CONFIG_BYTES = 64 * 1024
"""Largest bucket configuration document."""
MAX_PART_NUMBER = 10_000
MIN_PART_BYTES = 5 * 1024 * 1024
"""S3's smallest allowed part (all but the last); backends may enforce it."""
MAX_LIST_KEYS = 1000
"""The most entries one ``list_objects`` page returns (S3's cap)."""

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+")
_CONFIG_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")


class StorageError(Exception):
    """The backend failed; the operation may or may not be retried by the client."""

    code = "InternalError"
    """S3's error code for the failure (a front renders it)."""


class StorageFull(StorageError):
    """The backend has no space left (a full disk, a quota): nothing was stored, and the same
    write succeeds once space returns. The gateway answers 507, the S3 front 503 (S3 has no
    such error)."""

    code = "ServiceUnavailable"


class StorageUpstreamError(StorageError):
    """The storage's upstream service (the S3 endpoint of ``--storage s3``) failed: it answered
    an error (a 500, a 503, …) or the connection to it broke. The gateway answers 502."""

    code = "BadGateway"


class StorageUpstreamTimeout(StorageUpstreamError):
    """The storage's upstream did not answer within its deadline (``--s3-timeout``, each
    attempt). The gateway answers 504."""

    code = "GatewayTimeout"


_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def os_failure(exc: OSError, what: str) -> StorageError:
    """A failed file operation as a storage error (``StorageFull`` when it ran out of space)."""
    kind = StorageFull if exc.errno in _NO_SPACE_ERRNOS else StorageError
    return kind(f"{what}: {exc.strerror}")


class ObjectNotFound(StorageError):
    """No object is stored under the key."""

    code = "NoSuchKey"


class NoSuchBucket(StorageError):
    """The bucket does not exist."""

    code = "NoSuchBucket"


class BucketAlreadyExists(StorageError):
    """A bucket of that name exists already."""

    code = "BucketAlreadyExists"


class BucketNotEmpty(StorageError):
    """The bucket still holds objects."""

    code = "BucketNotEmpty"


class NoSuchUpload(StorageError):
    """No multipart upload has that id (for that bucket and key): never created, completed or aborted."""

    code = "NoSuchUpload"


class InvalidPart(StorageError):
    """A part named at completion was never uploaded (or is named twice)."""

    code = "InvalidPart"


class InvalidPartOrder(StorageError):
    """The part numbers named at completion are not strictly ascending."""

    code = "InvalidPartOrder"


class EntityTooSmall(StorageError):
    """A part but the last is smaller than ``MIN_PART_BYTES`` (refused at completion by backends
    that enforce it)."""

    code = "EntityTooSmall"


class InvalidArgument(StorageError):
    """A caller passed a value the storage contract does not allow (a bucket name, a part
    number, a metadata blob over its cap). The gateway validates first; this is the backstop."""

    code = "InvalidArgument"


def validate_bucket_name(name: str) -> str:
    """Return ``name`` if S3's rules allow it: 3-63 characters of lowercase letters, digits,
    ``.`` and ``-``, starting and ending with a letter or digit, no ``..``, not an IPv4 address."""
    if not _BUCKET_NAME.fullmatch(name) or ".." in name or _IPV4_LIKE.fullmatch(name):
        raise InvalidArgument("invalid bucket name")
    return name


def validate_config_name(name: str) -> str:
    """Configuration document names are short lowercase words (``encryption``, ``cors``)."""
    if not _CONFIG_NAME.fullmatch(name):
        raise InvalidArgument("invalid bucket configuration name")
    return name


def check_metadata(metadata: bytes) -> bytes:
    if len(metadata) > MAX_METADATA_BYTES:
        raise InvalidArgument(f"metadata exceeds {MAX_METADATA_BYTES} bytes")
    return bytes(metadata)


def check_sealed_etag(sealed_etag: bytes) -> bytes:
    if len(sealed_etag) > MAX_SEALED_ETAG_BYTES:
        raise InvalidArgument(f"sealed ETag exceeds {MAX_SEALED_ETAG_BYTES} bytes")
    return bytes(sealed_etag)


def check_catalog_key(wrapped: bytes) -> bytes:
    if not wrapped or len(wrapped) > MAX_CATALOG_KEY_BYTES:
        raise InvalidArgument(f"a wrapped catalog key is 1 to {MAX_CATALOG_KEY_BYTES} bytes")
    return bytes(wrapped)


def check_part_metadata(metadata: bytes) -> bytes:
    if len(metadata) > MAX_PART_METADATA_BYTES:
        raise InvalidArgument(f"part metadata exceeds {MAX_PART_METADATA_BYTES} bytes")
    return bytes(metadata)


def check_part_number(part_number: int) -> int:
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise InvalidArgument(f"part number must be 1..{MAX_PART_NUMBER}")
    return part_number


def check_completion(part_numbers: Sequence[int]) -> tuple[int, ...]:
    """The part numbers of a completion: at least one, strictly ascending, each valid."""
    numbers = tuple(part_numbers)
    if not numbers:
        raise InvalidPart("a completion names at least one part")
    for n in numbers:
        check_part_number(n)
    if any(a == b for a, b in zip(numbers, numbers[1:])):
        raise InvalidPart("a part is named twice")
    if any(a > b for a, b in zip(numbers, numbers[1:])):
        raise InvalidPartOrder("part numbers must be ascending")
    return numbers


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a backend knows about one stored object (sizes are of the stored bytes)."""

    bucket: str
    key: str
    size: int
    etag: str
    last_modified: float
    """Seconds since the epoch."""
    metadata: bytes = b""
    """The opaque blob given at ``open_write`` / ``create_upload``."""
    part_sizes: tuple[int, ...] = ()
    """For an object made by ``complete_upload``: each part's stored size, in order (they sum
    to ``size``). Empty for an object written whole."""
    sealed_etag: bytes = b""
    """The blob given as ``sealed_etag`` to ``commit`` / ``complete_upload``; empty when none was."""


@dataclass(frozen=True, slots=True)
class BucketInfo:
    name: str
    created: float
    """Seconds since the epoch."""


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    """One object in a listing."""

    key: str
    size: int
    etag: str
    last_modified: float


@dataclass(frozen=True, slots=True)
class ObjectPage:
    """One page of ``list_objects``."""

    objects: tuple[ObjectEntry, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    next_marker: str | None
    """When truncated: the last key or common prefix of this page (in key order); pass it as
    ``start_after`` to continue. ``None`` when not truncated."""


@dataclass(frozen=True, slots=True)
class PartInfo:
    part_number: int
    size: int
    etag: str
    last_modified: float
    metadata: bytes = b""
    """The opaque blob given to ``PartWriter.commit``."""


@dataclass(frozen=True, slots=True)
class UploadInfo:
    key: str
    upload_id: str
    initiated: float


@runtime_checkable
class ObjectWriter(Protocol):
    """A streaming write in progress; finish it with ``commit`` or ``abort``."""

    @property
    def bytes_written(self) -> int: ...

    async def write(self, chunk: bytes | bytearray) -> None: ...

    async def commit(self, metadata: bytes | None = None, sealed_etag: bytes = b"") -> StoredObject:
        """Make the object visible; ``metadata`` (when given) replaces the blob of ``open_write``;
        ``sealed_etag`` is kept with it for listings."""
        ...

    async def abort(self) -> None: ...


@runtime_checkable
class PartWriter(Protocol):
    """A streaming write of one part of a multipart upload; finish it with ``commit`` or ``abort``."""

    @property
    def bytes_written(self) -> int: ...

    async def write(self, chunk: bytes | bytearray) -> None: ...

    async def commit(self, metadata: bytes = b"") -> PartInfo:
        """Make the part durable, with ``metadata`` (at most ``MAX_PART_METADATA_BYTES``) kept beside it."""
        ...

    async def abort(self) -> None: ...


@runtime_checkable
class ObjectReader(Protocol):
    """A streaming read of ``[start, end)`` of one object; close it when done."""

    @property
    def info(self) -> StoredObject: ...

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class RangeReader:
    """The part every backend's ``ObjectReader`` shares: the object and the range it streams."""

    def __init__(self, info: StoredObject, start: int, end: int) -> None:
        self._info = info
        self._start = start
        self._end = end

    @property
    def info(self) -> StoredObject:
        return self._info

    @property
    def start(self) -> int:
        return self._start

    @property
    def end(self) -> int:
        return self._end


@runtime_checkable
class Storage(Protocol):
    """A place for buckets of encrypted objects. One module per backend implements this."""

    name: str
    """Short backend name for logs and readiness output (``file``, ``s3``)."""

    # -- buckets --

    async def create_bucket(self, bucket: str) -> BucketInfo: ...

    async def head_bucket(self, bucket: str) -> BucketInfo: ...

    async def delete_bucket(self, bucket: str) -> None: ...

    async def list_buckets(self) -> list[BucketInfo]: ...

    async def put_bucket_config(self, bucket: str, name: str, document: bytes) -> None: ...

    async def get_bucket_config(self, bucket: str, name: str) -> bytes | None: ...

    async def delete_bucket_config(self, bucket: str, name: str) -> None: ...

    # -- objects --

    async def open_write(self, bucket: str, key: str, metadata: bytes = b"", *,
                         length: int | None = None) -> ObjectWriter: ...

    async def open_read(
        self, bucket: str, key: str, start: int | None = None, end: int | None = None
    ) -> ObjectReader:
        """Open ``[start, end)``; ``None`` means the object's beginning / end.

        Raises ``ObjectNotFound`` before any byte is produced when the key is absent.
        """
        ...

    async def head(self, bucket: str, key: str) -> StoredObject: ...

    async def delete(self, bucket: str, key: str) -> None:
        """Remove the object; deleting a missing object succeeds."""
        ...

    async def list_objects(
        self, bucket: str, *, prefix: str = "", delimiter: str | None = None,
        start_after: str | None = None, max_keys: int = MAX_LIST_KEYS,
    ) -> ObjectPage: ...

    # -- multipart uploads --

    async def create_upload(self, bucket: str, key: str, metadata: bytes = b"") -> str: ...

    async def open_part_write(self, bucket: str, key: str, upload_id: str, part_number: int, *,
                              length: int | None = None) -> PartWriter: ...

    async def upload_metadata(self, bucket: str, key: str, upload_id: str) -> bytes:
        """The blob given to ``create_upload``; ``NoSuchUpload`` once the upload ended."""
        ...

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]: ...

    async def list_uploads(self, bucket: str, prefix: str = "") -> list[UploadInfo]:
        """In-progress uploads whose key starts with ``prefix``, by key then initiation time."""
        ...

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, part_numbers: Sequence[int], metadata: bytes | None = None,
        sealed_etag: bytes = b"",
    ) -> StoredObject:
        """Make the object of ``part_numbers``; its metadata blob is ``metadata``, or the upload's when
        ``None``; ``sealed_etag`` is kept with it for listings."""
        ...

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None: ...

    async def expire_uploads(self, older_than_seconds: float) -> int:
        """Abort every upload (of any bucket) initiated more than ``older_than_seconds`` ago;
        return how many were aborted."""
        ...

    # -- the catalog key (see the module docstring) --

    async def read_catalog_key(self) -> bytes | None: ...

    async def create_catalog_key(self, wrapped: bytes) -> bytes: ...

    # -- the backend --

    async def check(self) -> None:
        """Raise ``StorageError`` unless the backend is reachable and writable."""
        ...

    async def close(self) -> None: ...


def resolve_range(size: int, start: int | None, end: int | None) -> tuple[int, int]:
    """Clamp a requested half-open range to an object of ``size`` bytes.

    A start at or past the end gives an empty range. Raises ``ValueError`` for negative
    bounds (a caller bug: the gateway computes ranges itself).
    """
    lo = 0 if start is None else start
    hi = size if end is None else min(end, size)
    if lo < 0 or hi < 0:
        raise ValueError("range bounds must be non-negative")
    lo = min(lo, hi)
    return lo, hi
