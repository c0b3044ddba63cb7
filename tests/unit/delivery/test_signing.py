"""Webhook signatures: verifiable, bound to body and time, rotation-friendly."""

import hashlib
import hmac

from pipeline.delivery.signing import sign, verify

BODY = b'{"incident_id": "g1~inactivity:s1~1"}'


def test_signature_is_the_documented_hmac():
    header = sign(["s3cret"], 1_782_864_000, BODY)
    want = hmac.new(b"s3cret", b"1782864000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1782864000,v1={want}"
    assert verify("s3cret", header, BODY, now=1_782_864_010)


def test_tampering_replay_and_wrong_secrets_fail():
    header = sign(["s3cret"], 1_782_864_000, BODY)
    assert not verify("s3cret", header, BODY + b" ", now=1_782_864_000)
    assert not verify("other", header, BODY, now=1_782_864_000)
    assert not verify("s3cret", header, BODY, now=1_782_864_000 + 301)
    assert not verify("s3cret", "garbage", BODY, now=1_782_864_000)
    assert not verify("s3cret", "t=x,v1=y", BODY, now=1_782_864_000)


def test_rotation_carries_both_signatures():
    header = sign(["new", "old"], 1_782_864_000, BODY)
    assert verify("new", header, BODY, now=1_782_864_000)
    assert verify("old", header, BODY, now=1_782_864_000)
