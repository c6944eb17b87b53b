"""The benchmark's identity provider: an RS256 key, its JWKS and tokens
signed with it, written to a folder that `python3 -m http.server` serves.

    tokens.py DIR ISSUER POOL

writes DIR/jwks.json, DIR/public.pem (the same key, for HAProxy's
jwt_verify), DIR/reader.txt (one token), DIR/pool.txt (POOL distinct
tokens, one per line, different subjects) and DIR/runner.txt (one token
allowed to trigger syncs). Tokens live 24 hours.
"""

import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

AUDIENCE = "airlock"
KID = "bench-rs256"


def main() -> None:
    out, issuer, pool = sys.argv[1], sys.argv[2], int(sys.argv[3])
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": KID, "alg": "RS256", "use": "sig"})
    with open(f"{out}/jwks.json", "w") as f:
        json.dump({"keys": [public]}, f)
    with open(f"{out}/public.pem", "wb") as f:
        f.write(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    now = int(time.time())

    def token(subject: str, role: str) -> str:
        claims = {
            "iss": issuer,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + 86_400,
            "roles": [role],
        }
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})

    with open(f"{out}/reader.txt", "w") as f:
        f.write(token("bench-reader", "reader") + "\n")
    with open(f"{out}/runner.txt", "w") as f:
        f.write(token("bench-runner", "runner") + "\n")
    with open(f"{out}/pool.txt", "w") as f:
        for i in range(pool):
            f.write(token(f"bench-reader-{i:04d}", "reader") + "\n")


if __name__ == "__main__":
    main()
