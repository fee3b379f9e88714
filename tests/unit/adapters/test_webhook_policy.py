"""The SSRF rules of webhook tools, checked without any network: URLs, ports, allowlists and addresses."""

from __future__ import annotations

import pytest
from ctxgate.adapters.webhook_policy import WebhookPolicy, WebhookRefused

OPEN = WebhookPolicy.parse([])

REFUSED_ADDRESSES = [
    "127.0.0.1",
    "127.8.9.10",
    "0.0.0.0",
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "224.0.0.251",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "198.18.0.1",
    "192.0.2.10",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",  # multicast
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::808:808",  # NAT64 even of a public address
    "64:ff9b:1::a00:1",  # local-use NAT64
    "2002:7f00:1::1",  # 6to4
    "2001:0:4136:e378::1",  # Teredo
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:0:7f00:1",  # IPv4-translated
    "::127.0.0.1",  # IPv4-compatible
    "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
    "2001:db8::1",  # documentation
]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_a_non_public_address_is_refused(address):
    with pytest.raises(WebhookRefused):
        OPEN.pick_address([address])


@pytest.mark.parametrize("address", ["127.0.0.1", "[::1]", "[::ffff:7f00:1]", "[::ffff:0:7f00:1]", "[64:ff9b::a00:1]"])
def test_a_non_public_address_literal_in_the_url_is_refused(address):
    with pytest.raises(WebhookRefused):
        OPEN.check_url(f"http://{address}/hook")


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "::ffff:93.184.216.34"])
def test_a_public_address_is_allowed(address):
    assert OPEN.pick_address([address]) in ("93.184.216.34", "2606:4700::1111")


def test_one_refused_address_among_public_ones_refuses_the_host():
    with pytest.raises(WebhookRefused):
        OPEN.pick_address(["93.184.216.34", "127.0.0.1"])


def test_the_address_picked_is_ipv4_when_there_is_one():
    assert OPEN.pick_address(["2606:4700::1111", "93.184.216.34"]) == "93.184.216.34"


def test_the_refusal_does_not_say_which_address_a_name_resolved_to():
    with pytest.raises(WebhookRefused) as refused:
        OPEN.pick_address(["10.20.30.40"])
    assert "10.20.30.40" not in str(refused.value)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "http:///nohost", "http://user:pw@example.com/x"]
)
def test_only_plain_http_urls_are_allowed(url):
    with pytest.raises(WebhookRefused):
        OPEN.check_url(url)


@pytest.mark.parametrize("url", ["http://example.com/x", "https://example.com/x", "https://example.com:443/x"])
def test_ports_80_and_443_are_allowed(url):
    assert OPEN.check_url(url).host == "example.com"


@pytest.mark.parametrize("url", ["http://example.com:8080/x", "https://example.com:22/x", "http://example.com:6379"])
def test_any_other_port_is_refused(url):
    with pytest.raises(WebhookRefused, match="port"):
        OPEN.check_url(url)


def test_an_allowlist_admits_only_its_hosts_and_wildcards():
    policy = WebhookPolicy.parse(["api.tools.example", "*.hooks.example"])
    assert policy.check_url("https://api.tools.example/x").port == 443
    assert policy.check_url("https://a.hooks.example/x").host == "a.hooks.example"
    with pytest.raises(WebhookRefused, match="allowlist"):
        policy.check_url("https://evil.example/x")


def test_an_allowlisted_host_with_its_port_admits_that_port_only():
    policy = WebhookPolicy.parse(["tools.example:8443", "plain.example"])
    assert policy.check_url("https://tools.example:8443/x").port == 8443
    with pytest.raises(WebhookRefused):
        policy.check_url("https://tools.example:8444/x")
    with pytest.raises(WebhookRefused):
        policy.check_url("https://plain.example:8443/x")


def test_an_allowlisted_host_still_may_not_resolve_to_a_private_address():
    policy = WebhookPolicy.parse(["tools.example"])
    policy.check_url("https://tools.example/x")
    with pytest.raises(WebhookRefused):
        policy.pick_address(["10.0.0.7"])


def test_an_allowlisted_ip_or_cidr_admits_that_private_address():
    policy = WebhookPolicy.parse(["tools.internal", "10.1.0.0/16", "127.0.0.1:9000"])
    assert policy.pick_address(["10.1.2.3"]) == "10.1.2.3"
    assert policy.check_url("http://127.0.0.1:9000/x").literal is not None
    assert policy.pick_address(["::ffff:127.0.0.1"]) == "127.0.0.1"
    with pytest.raises(WebhookRefused):
        policy.pick_address(["10.2.0.1"])
    with pytest.raises(WebhookRefused):
        policy.check_url("http://127.0.0.1:9001/x")


def test_an_allowlisted_ipv6_address_with_a_port_is_understood():
    policy = WebhookPolicy.parse(["[::1]:8080"])
    assert policy.check_url("http://[::1]:8080/x").host == "::1"
    with pytest.raises(WebhookRefused):
        OPEN.check_url("http://[::1]:8080/x")


@pytest.mark.parametrize("entry", ["host:notaport", "10.0.0.0/99", "a@b", "tools.example:0"])
def test_a_malformed_allowlist_entry_is_an_error(entry):
    with pytest.raises(ValueError):
        WebhookPolicy.parse([entry])
