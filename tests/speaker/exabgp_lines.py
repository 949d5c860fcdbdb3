"""ExaBGP 5 JSON lines as the speaker reads them (recorded from ExaBGP 5.0 against FRR), and the events they
parse to: shared by the message, event, negotiation and bad-input tests."""

from __future__ import annotations

from bgpctl.core.types import RouteKey
from bgpctl.speaker import messages as m

H = '{ "exabgp": "5.0.0", "time": 1795237155.3036466, "host" : "vm", "pid" : 9451, "ppid" : 1, "counter": 2, '


NB = (
    '"neighbor": { "address": { "local": "198.18.1.2", "peer": "198.18.1.1" }, '
    '"asn": { "local": 65000, "peer": 65010 }, "router-id": "198.18.1.2" '
)


NB6 = NB.replace('"198.18.1.2", "peer": "198.18.1.1"', '"2001:db8:1::2", "peer": "2001:db8:1::1"')


CASES: list[tuple[str, str, m.Event]] = [
    ("ack done", "done\n", m.Ack(True)),
    ("ack error", "error", m.Ack(False)),
    (
        "state connected",
        H + '"type": "state", ' + NB + ', "state": "connected" } }',
        m.StateEvent("198.18.1.1", "connected"),
    ),
    ("state up", H + '"type": "state", ' + NB + ', "state": "up" } }', m.StateEvent("198.18.1.1", "up")),
    (
        "state down with reason",
        H + '"type": "state", ' + NB + ', "state": "down", "reason": "notification received (6,2)" } }',
        m.StateEvent("198.18.1.1", "down", "notification received (6,2)"),
    ),
    (
        "update with add-path",
        H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "update": { "attribute": { "origin": '
        '"igp", "as-path": {"0": {"element": "as-sequence", "value": [65010]}}, "med": 0 }, "announce": { "ipv4 '
        'unicast": { "198.18.1.1": [ { "nlri": "192.0.2.0/24", "path-information": "0.0.0.2" } ] } } } } } }',
        m.UpdateEvent(
            "198.18.1.1",
            "receive",
            m.RouteAttributes((65010,), 0, "igp"),
            (m.Nlri("ipv4 unicast", RouteKey("192.0.2.0/24", 2), "198.18.1.1"),),
            (),
        ),
    ),
    (
        "our own route reflected back, with communities",
        H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "update": { "attribute": { "origin": '
        '"igp", "as-path": {"0": {"element": "as-sequence", "value": [65010, 65000, 65000]}}, "community": [ [ 65000, '
        '100 ], [ 65000, 200 ] ], "extended-community": [ { "value": 842122827661412, '
        '"string": "target:65000:100" } ], '
        '"large-community": [ [ 65000, 1 , 2 ] ] }, "announce": { "ipv4 unicast": { "198.18.1.1": [ { "nlri": '
        '"203.0.113.0/26" } ] } } } } } }',
        m.UpdateEvent(
            "198.18.1.1",
            "receive",
            m.RouteAttributes((65010, 65000, 65000), None, "igp", ("65000:100", "65000:200"), ("65000:1:2",)),
            (m.Nlri("ipv4 unicast", RouteKey("203.0.113.0/26"), "198.18.1.1"),),
            (),
        ),
    ),
    (
        "IPv6 NLRI under the global and the link-local next hop: deduplicated, global kept",
        H + '"type": "update", ' + NB6 + ', "direction": "receive", "message": { "update": { "attribute": { "origin": '
        '"igp", "as-path": {"0": {"element": "as-sequence", "value": [65010]}} }, "announce": { "ipv6 unicast": { '
        '"fe80::cca3:6ff:fe1d:4a83": [ { "nlri": "2001:db8:10::/48" } ], "2001:db8:1::1": [ { "nlri": '
        '"2001:db8:10::/48" } ] } } } } } }',
        m.UpdateEvent(
            "2001:db8:1::1",
            "receive",
            m.RouteAttributes((65010,), None, "igp"),
            (m.Nlri("ipv6 unicast", RouteKey("2001:db8:10::/48"), "2001:db8:1::1"),),
            (),
        ),
    ),
    (
        "end of RIB",
        H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "eor": { "afi" : "ipv4", '
        '"safi" : "unicast" } } } }',
        m.EorEvent("198.18.1.1", "receive", "ipv4", "unicast"),
    ),
    (
        "withdraw",
        H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "update": { "withdraw": { '
        '"ipv4 unicast": [ { "nlri": "203.0.113.0/26", "path-information": "0.0.0.3" } ] } } } } }',
        m.UpdateEvent(
            "198.18.1.1",
            "receive",
            m.RouteAttributes(),
            (),
            (m.Nlri("ipv4 unicast", RouteKey("203.0.113.0/26", 3), None),),
        ),
    ),
    (
        "sent update echo",
        H + '"type": "update", ' + NB + ', "direction": "send", "message": { "update": { "attribute": '
        '{ "origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65000, 65000, 65000]}} }, '
        '"announce": { '
        '"ipv4 unicast": { "198.18.1.2": [ { "nlri": "203.0.113.0/26" } ] } } } } } }',
        m.UpdateEvent(
            "198.18.1.1",
            "send",
            m.RouteAttributes((65000, 65000, 65000), None, "igp"),
            (m.Nlri("ipv4 unicast", RouteKey("203.0.113.0/26"), "198.18.1.2"),),
            (),
        ),
    ),
    (
        "notification",
        H + '"type": "notification", ' + NB + ', "direction": "receive", "notification": { "code": 6, '
        '"subcode": 2, "data": "0x5368", "message": "Shutdown Communication: \\"maintenance-window\\"" }  } }',
        m.NotificationEvent("198.18.1.1", "receive", 6, 2, 'Shutdown Communication: "maintenance-window"'),
    ),
    (
        "ExaBGP shutting down",
        '{ "exabgp": "5.0.0", "time": 1795237155.3036466, "host" : "vm", "pid" : 9451, '
        '"ppid" : 1, "type": "notification", "notification": "shutdown" }',
        m.ShutdownEvent(),
    ),
    (
        "other event type",
        H + '"type": "keepalive", ' + NB + ', "direction": "receive" } }',
        m.OtherEvent("keepalive", "198.18.1.1"),
    ),
]


_HEAD = '{ "exabgp": "5.0.0", "time": 1.0, "host": "cr", "pid": 1, "ppid": 1, "counter": 2, "type": "negotiated", '


_NEIGHBOR = (
    '"neighbor": { "address": { "local": "198.18.1.2", "peer": "198.18.1.1" }, '
    '"asn": { "local": 65000, "peer": 65010 }, "router-id": "198.18.1.2", '
)


def _line(negotiated: str) -> str:
    return _HEAD + _NEIGHBOR + f'"negotiated": {negotiated} }} }}'


# the shape ExaBGP 5.0.15 writes (reactor/api/response/json.py, _negotiated), one line
WITH = (
    '{ "message_size": 4096, "hold_time": 9, "asn4": true, "multisession": false, "operational": false, '
    '"refresh": "normal", "families": ["ipv4 unicast"], "nexthop": [], '
    '"add_path": {"send": ["ipv4 unicast"], "receive": []} }'
)


WITHOUT = WITH.replace('"send": ["ipv4 unicast"]', '"send": []')
