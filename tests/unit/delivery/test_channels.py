"""The channel registry: every module of `pipeline.delivery.channels` that defines CHANNEL,
found without being named anywhere else, in its order; each refuses what is not an address."""

from __future__ import annotations

import pytest

from pipeline.delivery.channels import Channel, DeliveryError, channel, registry

SEVEN = ["webhook", "dingtalk", "wecom", "pagerduty", "alertmanager", "sms", "email"]


def test_the_registry_finds_all_seven_channels_in_their_order():
    assert list(registry()) == SEVEN
    for name, ch in registry().items():
        assert isinstance(ch, Channel) and ch.name == name
    assert [ch.order for ch in registry().values()] == sorted(ch.order for ch in registry().values())


def test_an_unknown_channel_is_a_final_error_naming_the_known_ones():
    with pytest.raises(DeliveryError, match="unknown channel 'fax'; known: webhook, dingtalk") as caught:
        channel("fax")
    assert caught.value.retriable is False


@pytest.mark.parametrize("name", SEVEN)
def test_every_channel_refuses_what_is_not_an_address(name):
    for bad in (42.5, [], "", {"x": 1}):
        with pytest.raises(ValueError):
            registry()[name].parse(bad)
