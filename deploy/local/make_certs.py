#!/usr/bin/env python3
"""Write a self-signed TLS certificate and key for a Dask cluster on one host (or a few).

Usage::

    python deploy/local/make_certs.py DIR

writes ``DIR/ca.pem`` (the certificate every process trusts), ``DIR/cert.pem`` (the same
certificate, presented by the scheduler, the workers and the clients) and ``DIR/key.pem`` (its
private key, mode 0600). They are what ``distributed.security.Security.temporary()`` makes in
memory, written to files so that ``dask scheduler`` and ``dask worker`` processes can load them
with ``--tls-ca-file ca.pem --tls-cert cert.pem --tls-key key.pem``. Dask checks the
certificate chain, not host names, so one certificate serves every process.

Whoever can read ``key.pem`` can join the cluster and run code on it: keep it private. For a
site-wide cluster, use certificates from your site's CA instead.
"""

from __future__ import annotations

import os
import pathlib
import sys


def make_certs(directory: str | os.PathLike[str]) -> dict[str, pathlib.Path]:
    """Write ca.pem, cert.pem and key.pem into ``directory`` and return their paths."""
    from distributed.security import Security

    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    temporary = Security.temporary()
    paths = {name: out / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_text(temporary.tls_ca_file)
    paths["cert"].write_text(temporary.tls_client_cert)
    # the key is created private: no window in which another user could read it
    fd = os.open(paths["key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(temporary.tls_client_key)
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 2)
    for path in make_certs(sys.argv[1]).values():
        print(path)
