"""Access tokens: usercore issue + authenticate vs raw pyjwt encode + decode.

usercore's round trip is ``AccessTokenCodec.issue`` plus ``core.auth.authenticate``
(signature and claims, then one indexed lookup for the revoked ``jti`` and one
for the user and its token version).  The peer is ``jwt.encode`` + ``jwt.decode``
of the same claims with the same key, audience and issuer checks.

Targets (issue 4): <= 1.5x raw pyjwt on the memory store, <= 2x on SQLite.

Run: ``python benchmarks/bench_tokens.py [-n 2000]``; exit status 1 on a miss.
Cases alternate in rounds so drift hits both alike; medians of per-round means.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import argon2
import jwt

from usercore import Settings, UserCore

SECRET = "bench-secret-" + "k" * 40


def per_call_us(call: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n * 1e6


def measure(url: str, n: int, rounds: int) -> tuple[float, float]:
    settings = Settings(secret_key=SECRET, argon2_profile=argon2.profiles.CHEAPEST)
    with UserCore.open(url, settings=settings) as core:
        user = core.users.register(email="ada@example.com", password="correct horse battery")
        codec = core._ctx.tokens.codec
        authenticate = core.auth.authenticate

        def usercore_round_trip() -> object:
            token, _ = codec.issue(user_id=user.id, token_version=0, roles=user.roles)
            return authenticate(token)

        _, claims = codec.issue(user_id=user.id, token_version=0, roles=user.roles)
        payload = {
            "iss": "usercore",
            "aud": "usercore",
            "sub": str(user.id),
            "iat": int(claims.issued_at.timestamp()),
            "nbf": int(claims.issued_at.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
            "jti": claims.jti,
            "typ": "access",
            "ver": 0,
            "roles": ["user"],
        }

        def pyjwt_round_trip() -> object:
            token = jwt.encode(payload, SECRET, algorithm="HS256")
            return jwt.decode(
                token, SECRET, algorithms=["HS256"], audience="usercore", issuer="usercore"
            )

        usercore_round_trip()
        pyjwt_round_trip()
        ours, theirs = [], []
        for _ in range(rounds):
            theirs.append(per_call_us(pyjwt_round_trip, n))
            ours.append(per_call_us(usercore_round_trip, n))
    return statistics.median(ours), statistics.median(theirs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=2000, help="round trips per timing")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    ok = True
    print(f"{'store':<8} {'usercore us':>12} {'pyjwt us':>10} {'ratio':>7} {'target':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, url, target in (
            ("memory", "memory://", 1.5),
            ("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", 2.0),
        ):
            ours, theirs = measure(url, args.n, args.rounds)
            ratio = ours / theirs
            passed = ratio <= target
            ok = ok and passed
            print(
                f"{label:<8} {ours:12.1f} {theirs:10.1f} {ratio:7.2f} {target:7.1f}  "
                f"{'PASS' if passed else 'FAIL'}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
