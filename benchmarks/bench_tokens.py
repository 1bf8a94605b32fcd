"""Access-token checks against the standard-library floor and a raw pyjwt decode.

Subjects, all on the same HS256 token, measured in one run:

- **stdlib floor** (the peer): split, base64url-decode, HMAC-SHA256 +
  ``hmac.compare_digest``, ``json.loads`` and an ``exp`` check; no other rule.
- **raw pyjwt**: ``jwt.decode`` with the algorithm list, audience and issuer.
- **codec, first sight**: ``AccessTokenCodec.verify`` of a token it has not
  seen (the verified-token cache off): every RFC 8725 check on the stdlib path.
- **codec, seen before**: the same token again (the cache on, as served).
- **authenticate**: ``core.auth.authenticate`` on the memory store, the codec
  plus the service's revoked-``jti`` and user reads, first sight and seen.
- **authenticate, SQLite**: reported only (one read-only transaction more).

Targets (issue 18 item 3): ``authenticate`` on memory within 2x the floor and
at most 0.5x a raw pyjwt decode.

Run: ``python benchmarks/bench_tokens.py [-n 5000] [--rounds 15]``; exit status 1
on a miss.  Cases alternate in many short rounds so drift hits all alike, and
each keeps its fastest round's mean: on a shared machine other processes only
ever add time, to whichever case they happen to interrupt.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import argon2
import jwt

from usercore import Settings, UserCore
from usercore.tokens import AccessTokenCodec

SECRET = "bench-secret-" + "k" * 40
KEY = SECRET.encode()


def floor_verify(token: str) -> dict[str, object]:
    """The least any HS256 check must do: the peer every subject is held to."""
    signing_input, _, signature = token.rpartition(".")
    payload = signing_input.partition(".")[2]
    mac = hmac.new(KEY, signing_input.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(
        base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), mac
    ):
        raise ValueError("bad signature")
    claims: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    if not time.time() < claims["exp"]:  # type: ignore[operator]
        raise ValueError("expired")
    return claims


def per_call_us(call: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n * 1e6


def measure(n: int, rounds: int, sqlite_url: str) -> dict[str, float]:
    settings = Settings(secret_key=SECRET, argon2_profile=argon2.profiles.CHEAPEST)
    with (
        UserCore.open("memory://", settings=settings) as core,
        UserCore.open(sqlite_url, settings=settings) as on_sqlite,
    ):
        user = core.users.register(email="ada@example.com", password="correct horse battery")
        on_sqlite.users.register(email="ada@example.com", password="correct horse battery")
        token = core.auth.login("ada@example.com", "correct horse battery").access_token
        served = core._ctx.sessions.codec
        first_sight = AccessTokenCodec(settings, core.clock, cache_size=0)
        # A second facade on the same store whose codec never remembers a
        # token: each call is a first sight, with nothing else in between.
        uncached = UserCore(core.store, settings, clock=core.clock)
        uncached._ctx.sessions.codec = first_sight
        authenticate_first_sight = partial(uncached.auth.authenticate, token)

        cases: dict[str, Callable[[], object]] = {
            "stdlib floor": partial(floor_verify, token),
            "raw pyjwt decode": lambda: jwt.decode(
                token, SECRET, algorithms=["HS256"], audience="usercore", issuer="usercore"
            ),
            "codec verify, first sight": partial(first_sight.verify, token),
            "codec verify, seen before": partial(served.verify, token),
            "authenticate memory, first sight": authenticate_first_sight,
            "authenticate memory, seen before": partial(core.auth.authenticate, token),
            "authenticate sqlite, seen before": partial(on_sqlite.auth.authenticate, token),
        }
        for call in cases.values():
            assert call() is not None
        assert user.id == core.auth.authenticate(token).user_id
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, call in cases.items():
                samples[name].append(per_call_us(call, n))
    return {name: min(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=5000, help="calls per timing")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(args.n, args.rounds, f"sqlite:///{Path(tmp) / 'bench.db'}")
    floor, pyjwt_us = figures["stdlib floor"], figures["raw pyjwt decode"]
    print(f"{'subject':<36} {'µs':>7} {'× floor':>8} {'× pyjwt':>8}")
    for name, value in figures.items():
        print(f"{name:<36} {value:7.2f} {value / floor:8.2f} {value / pyjwt_us:8.2f}")
    print()
    ok = True
    for name in ("authenticate memory, seen before", "authenticate memory, first sight"):
        for peer, peer_us, target in (("floor", floor, 2.0), ("pyjwt", pyjwt_us, 0.5)):
            ratio = figures[name] / peer_us
            passed = ratio <= target
            ok = ok and passed
            print(
                f"{name:<36} vs {peer:<6} {ratio:5.2f}×  target ≤ {target}×  "
                f"{'PASS' if passed else 'MISS'}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
