"""moto's S3 server in a process of its own, for the objects tests and benchmark.

Run as a script: prints the port it listens on (127.0.0.1) and serves until
its standard input closes, so it dies with whoever started it. A separate
process, like a real MinIO: the client's memory can be measured without the
server's copy of every object, it can be killed to test a dead server, and
it does not compete with the client for the GIL.
"""

from __future__ import annotations

import logging
import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(port, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
