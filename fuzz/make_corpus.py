#!/usr/bin/env python3
"""Writes the seed corpus of the fuzzers (fuzz/corpus/<target>/): the RFC 2865
section 7 vectors, valid requests of every kind the server handles, and hand-made
malformed packets. `cargo test` replays these files (tests/fuzz_corpus.rs).
Run from the repository root: python3 fuzz/make_corpus.py"""
import hashlib, hmac, os, struct

SECRET = b"fuzz"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def attr(t, v):
    return bytes([t, len(v) + 2]) + v


def packet(code, ident, auth, attrs, length=None):
    body = b"".join(attrs)
    n = 20 + len(body) if length is None else length
    return bytes([code, ident]) + struct.pack(">H", n) + auth + body


def pap_hide(pw, auth, secret=SECRET):
    pw = pw + b"\0" * ((16 - len(pw) % 16) % 16 or (16 if not pw else 0))
    out, prev = b"", auth
    for i in range(0, len(pw), 16):
        b = hashlib.md5(secret + prev).digest()
        c = bytes(x ^ y for x, y in zip(pw[i:i + 16], b))
        out += c
        prev = c
    return out


def with_ma(code, ident, auth, attrs):
    p = packet(code, ident, auth, [attr(80, b"\0" * 16)] + attrs)
    mac = hmac.new(SECRET, p, hashlib.md5).digest()
    return p[:22] + mac + p[38:]


def acct(ident, attrs):
    p = packet(4, ident, b"\0" * 16, attrs)
    auth = hashlib.md5(p + SECRET).digest()
    return p[:4] + auth + p[20:]


def u32(n):
    return struct.pack(">I", n)


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


A = bytes(range(16))
MAC1, MAC2 = b"02-00-00-00-00-01", b"02:00:00:00:00:02"

# RFC 2865 section 7: 7.1 request and response, 7.2 request and its authentic response.
rfc71_req = bytes.fromhex("0100003 80f403f94739780 57bd83d5cb98f4227a 01066e656d6f 02120dbe708d93d413ce3196e43f782a0aee 0406c0a80110 050600000003".replace(" ", ""))
rfc71_resp = bytes.fromhex("0200002686fe220e7624ba2a1005f6bf9b55e0b2 0606 00000001 0f06 00000000 0e06 c0a80103".replace(" ", ""))
rfc72_req = bytes.fromhex("010100472aee86f08d0d55969ca5978e0d3367a2 0108666c6f707379 031316e97557c3161858 95f293ff63440772 75 0406c0a80110 050600000014 060600000002 070600000001".replace(" ", ""))
rfc72_resp = bytes.fromhex("0201003815efbc7dab26cfa3dc34d9c03c8601a4 060600000002 070600000001 0806fffffffe 0a0600000002 0d0600000001 0c06000005dc".replace(" ", ""))

pap_ok = with_ma(1, 1, A, [attr(1, b"12345"), attr(2, pap_hide(b"12345", A)), attr(31, MAC1)])
seeds = {
    "rfc2865-7.1-request": rfc71_req,
    "rfc2865-7.1-response": rfc71_resp,
    "rfc2865-7.2-request": rfc72_req,
    "rfc2865-7.2-response": rfc72_resp,
    "pap-accept": pap_ok,
    "attr-length-0": packet(1, 2, A, [b"\x01\x00"]),
    "attr-length-1": packet(1, 3, A, [b"\x01\x01"]),
    "attr-past-end": packet(1, 4, A, [b"\x01\x09abc"]),
    "length-larger-than-datagram": packet(1, 5, A, [attr(1, b"12345")], length=200),
    "length-smaller-than-datagram": packet(1, 6, A, [attr(1, b"12345")], length=20) + b"\x01\x07",
    "length-below-header": packet(1, 7, A, [], length=19),
    "length-4097": packet(1, 8, A, [attr(18, b"x" * 253)] * 16, length=4097),
    "packet-4096": packet(2, 9, A, [attr(18, b"x" * 253)] * 15 + [attr(18, b"y" * (4096 - 20 - 15 * 255 - 2))]),
    "vsa-too-short": packet(1, 10, A, [attr(26, b"\0\0\x3a")]),
    "vsa-sub-length-0": packet(1, 11, A, [attr(26, b"\0\0\x3a\x8c\x08\x00")]),
    "vsa-sub-past-end": packet(1, 12, A, [attr(26, b"\0\0\x3a\x8c\x08\x09ab")]),
    "vsa-mikrotik": packet(1, 13, A, [attr(26, b"\0\0\x3a\x8c\x08\x0910M/10M")]),
    "user-password-15": packet(1, 14, A, [attr(1, b"12345"), attr(2, b"p" * 15)]),
    "user-password-17": packet(1, 15, A, [attr(1, b"12345"), attr(2, b"p" * 17)]),
    "user-password-144": packet(1, 16, A, [attr(1, b"12345"), attr(2, b"p" * 144)]),
    "message-authenticator-15": packet(1, 17, A, [attr(80, b"m" * 15)]),
    "message-authenticator-17": packet(1, 18, A, [attr(80, b"m" * 17)]),
    "message-authenticator-twice": packet(1, 19, A, [attr(80, b"m" * 16), attr(80, b"m" * 16)]),
    "unknown-code": packet(99, 20, A, [attr(1, b"12345")]),
    "chap-password-16": packet(1, 21, A, [attr(1, b"12345"), attr(3, b"c" * 16)]),
}
for name, data in seeds.items():
    write("packet", name, data)

# The whole request path (client 127.0.0.1, secret "fuzz", tokens 12345/55555/77777).
chap_ch = bytes(range(100, 116))
chap = bytes([7]) + hashlib.md5(bytes([7]) + b"12345" + chap_ch).digest()
chap_ra = bytes([8]) + hashlib.md5(bytes([8]) + b"12345" + A).digest()
paths = {
    "pap-accept": pap_ok,
    "pap-no-message-authenticator": packet(1, 2, A, [attr(1, b"12345"), attr(2, pap_hide(b"12345", A)), attr(31, MAC2)]),
    "pap-wrong-password": with_ma(1, 3, A, [attr(1, b"12345"), attr(2, pap_hide(b"54321", A)), attr(31, MAC1)]),
    "pap-long-password": with_ma(1, 4, A, [attr(1, b"12345"), attr(2, pap_hide(b"z" * 128, A))]),
    "pap-unknown-code": with_ma(1, 5, A, [attr(1, b"99999"), attr(2, pap_hide(b"99999", A)), attr(31, MAC1)]),
    "chap-challenge": with_ma(1, 6, A, [attr(1, b"12345"), attr(3, chap), attr(60, chap_ch), attr(31, MAC1)]),
    "chap-request-authenticator": with_ma(1, 7, A, [attr(1, b"12345"), attr(3, chap_ra)]),
    "mac-bound-wrong-device": with_ma(1, 8, A, [attr(1, b"55555"), attr(2, pap_hide(b"55555", A)), attr(31, MAC2)]),
    "mac-bound-no-device": with_ma(1, 9, A, [attr(1, b"55555"), attr(2, pap_hide(b"55555", A))]),
    "proxy-state": with_ma(1, 10, A, [attr(1, b"77777"), attr(2, pap_hide(b"77777", A)), attr(33, b"ps1"), attr(33, b"ps2")]),
    "both-pap-and-chap": with_ma(1, 11, A, [attr(1, b"12345"), attr(2, pap_hide(b"12345", A)), attr(3, chap_ra)]),
    "no-user-name": with_ma(1, 12, A, [attr(2, pap_hide(b"12345", A))]),
    "status-server": with_ma(12, 13, A, []),
    "bad-message-authenticator": pap_ok[:30] + bytes([pap_ok[30] ^ 1]) + pap_ok[31:],
    "acct-start": acct(14, [attr(40, u32(1)), attr(44, b"s1"), attr(1, b"12345"), attr(31, MAC1), attr(25, b"pinradius:token=1")]),
    "acct-interim": acct(15, [attr(40, u32(3)), attr(44, b"s1"), attr(1, b"12345"), attr(31, MAC1), attr(46, u32(300))]),
    "acct-stop": acct(16, [attr(40, u32(2)), attr(44, b"s1"), attr(1, b"12345"), attr(31, MAC1), attr(46, u32(600)), attr(8, bytes([10, 0, 0, 9]))]),
    "acct-on": acct(17, [attr(40, u32(7))]),
    "acct-unknown-status": acct(18, [attr(40, u32(15)), attr(44, b"s9")]),
    "acct-no-session-id": acct(19, [attr(40, u32(1)), attr(1, b"12345")]),
}
for name, data in paths.items():
    write("request_path", name, data)
print(f"wrote {len(seeds)} packet seeds and {len(paths)} request_path seeds under {ROOT}")
