"""The session lease on DynamoDB (moto, the table from template.yaml): one holder, and what a busy lease tells."""

from __future__ import annotations

import pytest
from ctxgate.adapters.dynamodb_context import DynamoContextStore
from ctxgate.adapters.dynamodb_sessions import DynamoSessionStore
from ctxgate.adapters.s3_blobs import S3BlobStore


@pytest.fixture
def store(aws) -> DynamoSessionStore:
    return DynamoContextStore(aws.table, S3BlobStore(aws.bucket), ttl_seconds=3600, offload_threshold_bytes=4096)


def test_a_busy_lease_tells_the_waiter_since_when_it_is_held_and_the_typical_hold(store):
    # GIVEN a session whose last turn recorded a typical hold of 2.5 s, and a turn holding it since t=100
    assert store.try_acquire("t", "s", "first", now=90.0, until=120.0).acquired
    store.release("t", "s", "first", typical_hold=2.5)
    taken = store.try_acquire("t", "s", "second", now=100.0, until=130.0)
    # WHEN another request tries to take it
    busy = store.try_acquire("t", "s", "third", now=101.0, until=131.0)
    # THEN it is refused, and learns both figures from the refusal; the holder learnt the typical hold on taking it
    assert taken.acquired and taken.typical_hold == 2.5
    assert not busy.acquired and busy.held_since == 100.0 and busy.typical_hold == 2.5
    assert busy.expected_release() == 102.5


def test_a_released_lease_is_free_and_only_its_holder_can_release_it(store):
    # GIVEN a lease held by "first"
    assert store.try_acquire("t", "s", "first", now=100.0, until=130.0).acquired
    # WHEN someone else releases it, then its holder does
    store.release("t", "s", "intruder", typical_hold=9.0)
    still_busy = store.try_acquire("t", "s", "second", now=101.0, until=131.0)
    store.release("t", "s", "first", typical_hold=1.0)
    # THEN only the holder's release freed it (and recorded its hold time)
    assert not still_busy.acquired and still_busy.typical_hold is None
    freed = store.try_acquire("t", "s", "second", now=102.0, until=132.0)
    assert freed.acquired and freed.typical_hold == 1.0


def test_an_expired_lease_is_taken_over(store):
    # GIVEN a lease whose holder died (its lease ran out at t=110)
    assert store.try_acquire("t", "s", "dead", now=100.0, until=110.0).acquired
    # WHEN another request tries after that
    # THEN it takes the lease
    assert store.try_acquire("t", "s", "next", now=111.0, until=140.0).acquired


def test_the_lease_of_a_failed_turn_leaves_no_item(store, aws):
    # GIVEN a lease taken for a session's first turn
    assert store.try_acquire("t", "new", "first", now=100.0, until=130.0).acquired
    # WHEN the turn fails and releases it without a hold time
    store.release("t", "new", "first", typical_hold=None)
    # THEN nothing is left in the table for that session
    assert aws.item_count() == 0
