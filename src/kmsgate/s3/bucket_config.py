"""Bucket configuration documents: location, CreateBucketConfiguration, default encryption.

GetBucketLocation answers with a bare ``LocationConstraint`` element whose text is the
region, empty for us-east-1 (S3's historical quirk, which SDKs rely on)::

    <LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">eu-west-1</LocationConstraint>

CreateBucket may carry ``<CreateBucketConfiguration><LocationConstraint>`` (or no body).
Get/PutBucketEncryption carry one rule::

    <ServerSideEncryptionConfiguration xmlns="...">
      <Rule>
        <ApplyServerSideEncryptionByDefault>
          <SSEAlgorithm>aws:kms</SSEAlgorithm>            AES256 | aws:kms
          <KMSMasterKeyID>arn:aws:kms:...</KMSMasterKeyID>  only with aws:kms, optional
        </ApplyServerSideEncryptionByDefault>
        <BucketKeyEnabled>true</BucketKeyEnabled>          optional
      </Rule>
    </ServerSideEncryptionConfiguration>
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kmsgate.s3.errors import InvalidArgument, MalformedXML, NotImplementedFeature
from kmsgate.s3.xmlreader import parse_boolean, parse_request_xml
from kmsgate.s3.xmlwriter import Element, leaf, node, render_document

MAX_CONFIGURATION_BYTES = 64 * 1024
"""Largest bucket configuration body accepted (the real ones are a few hundred bytes)."""
US_EAST_1 = "us-east-1"
_MAX_KMS_KEY_ID_CHARS = 2048
_CREATE_BUCKET_CHILDREN = frozenset({"LocationConstraint", "Location", "Bucket", "Tags"})


def location_constraint_result(region: str) -> bytes:
    """GetBucketLocation's body: the region, or empty for us-east-1 as S3 answers."""
    text = "" if region == US_EAST_1 else region
    return render_document(Element("LocationConstraint", text=text or None))


@dataclass(frozen=True, slots=True)
class CreateBucketConfiguration:
    """What a CreateBucket body asks for; ``None`` means the default region (us-east-1)."""

    location_constraint: str | None = None


def parse_create_bucket_configuration(body: bytes) -> CreateBucketConfiguration:
    """The configuration in a CreateBucket body (an empty body asks for the defaults).

    ``Location``, ``Bucket`` and ``Tags`` (directory buckets and tags-at-creation) are
    valid S3 but not offered here: ``NotImplemented`` rather than silently dropped.
    """
    if not body.strip():
        return CreateBucketConfiguration()
    tree = parse_request_xml(body, root="CreateBucketConfiguration", max_bytes=MAX_CONFIGURATION_BYTES)
    tree.allow_only(_CREATE_BUCKET_CHILDREN)
    if any(child.name != "LocationConstraint" for child in tree.children):
        raise NotImplementedFeature("Only LocationConstraint is supported in CreateBucketConfiguration")
    constraint = tree.text_of("LocationConstraint")
    return CreateBucketConfiguration(location_constraint=constraint.strip() if constraint else None)


class SseAlgorithm(enum.Enum):
    AES256 = "AES256"
    AWS_KMS = "aws:kms"


@dataclass(frozen=True, slots=True)
class BucketEncryption:
    """A bucket's default encryption: one rule, as S3 allows."""

    sse_algorithm: SseAlgorithm
    kms_master_key_id: str | None = None
    bucket_key_enabled: bool | None = None


def bucket_encryption_result(config: BucketEncryption) -> bytes:
    """GetBucketEncryption's body."""
    default = node(
        "ApplyServerSideEncryptionByDefault",
        leaf("SSEAlgorithm", config.sse_algorithm.value),
        leaf("KMSMasterKeyID", config.kms_master_key_id),
    )
    rule = node("Rule", default, leaf("BucketKeyEnabled", config.bucket_key_enabled))
    return render_document(node("ServerSideEncryptionConfiguration", rule))


def parse_bucket_encryption(body: bytes) -> BucketEncryption:
    """The configuration in a PutBucketEncryption body.

    Exactly one ``Rule`` with an ``ApplyServerSideEncryptionByDefault``; an algorithm
    outside S3's schema is ``MalformedXML``; ``aws:kms:dsse`` (valid S3, not offered
    here) is ``NotImplemented``; a key id with AES256 is ``InvalidArgument``, as S3 says.
    """
    tree = parse_request_xml(body, root="ServerSideEncryptionConfiguration", max_bytes=MAX_CONFIGURATION_BYTES)
    tree.allow_only(frozenset({"Rule"}))
    rules = tree.all("Rule")
    if len(rules) != 1:
        raise MalformedXML()
    rule = rules[0]
    rule.allow_only(frozenset({"ApplyServerSideEncryptionByDefault", "BucketKeyEnabled"}))
    default = rule.one("ApplyServerSideEncryptionByDefault")
    if default is None:
        raise MalformedXML()
    default.allow_only(frozenset({"SSEAlgorithm", "KMSMasterKeyID"}))
    algorithm_text = default.require_text("SSEAlgorithm").strip()
    if algorithm_text == "aws:kms:dsse":
        raise NotImplementedFeature("Dual-layer server-side encryption (aws:kms:dsse) is not supported")
    try:
        algorithm = SseAlgorithm(algorithm_text)
    except ValueError as exc:
        raise MalformedXML() from exc
    key_id = default.text_of("KMSMasterKeyID")
    if key_id is not None:
        key_id = key_id.strip()
        if algorithm is not SseAlgorithm.AWS_KMS:
            raise InvalidArgument(
                "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms",
                argument_name="ApplyServerSideEncryptionByDefault",
            )
        if not key_id or len(key_id) > _MAX_KMS_KEY_ID_CHARS:
            raise InvalidArgument("Invalid KMSMasterKeyID", argument_name="KMSMasterKeyID")
    bucket_key = rule.text_of("BucketKeyEnabled")
    return BucketEncryption(
        sse_algorithm=algorithm,
        kms_master_key_id=key_id,
        bucket_key_enabled=parse_boolean(bucket_key) if bucket_key is not None else None,
    )
