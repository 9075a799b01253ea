"""A server outside the cluster (run on the sandbox's login host) for the egress checks, and the matching
client code run in pods. Every mode stops by itself.

  python3 egress_server.py serve PORT SECONDS   GET /blob (SIZE pseudo-random bytes, seed 7), PUT /upload
                                                (answers "sha256 length" of the body), TCP on PORT+1 for the
                                                concurrency check: holds connections until COUNT are open
                                                (or 60 s), then echoes each one's bytes back and closes
  python3 egress_server.py stream               writes the same SIZE pseudo-random bytes to stdout
  python3 egress_server.py digest               prints their sha256
  python3 egress_server.py concurrent HOST PORT opens COUNT connections at once through egress; prints
                                                how many got their bytes back
"""

import asyncio
import hashlib
import http.server
import random
import resource
import sys
import threading

SIZE = 1 << 30
CHUNK = 1 << 20
COUNT = 1000


def chunks():
    rng = random.Random(7)
    for _ in range(SIZE // CHUNK):
        yield rng.randbytes(CHUNK)


def digest() -> str:
    h = hashlib.sha256()
    for c in chunks():
        h.update(c)
    return h.hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(SIZE))
        self.end_headers()
        for c in chunks():
            self.wfile.write(c)

    def do_PUT(self):  # noqa: N802
        h, n = hashlib.sha256(), 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while size := int(self.rfile.readline().split(b";")[0], 16):
                data = self.rfile.read(size)
                h.update(data)
                n += len(data)
                self.rfile.readline()
            self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", 0))
            while left:
                data = self.rfile.read(min(left, CHUNK))
                h.update(data)
                n += len(data)
                left -= len(data)
        body = f"{h.hexdigest()} {n}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


async def hold_and_echo(port: int) -> None:
    opened, everyone = 0, asyncio.Event()

    async def one(reader, writer):
        nonlocal opened
        opened += 1
        if opened >= COUNT:
            everyone.set()
        data = await reader.read(1024)
        try:
            await asyncio.wait_for(everyone.wait(), 60)
        except TimeoutError:
            pass
        writer.write(data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(one, "0.0.0.0", port, backlog=4096)
    async with server:
        await server.serve_forever()


async def concurrent(host: str, port: int) -> int:
    async def one(i: int) -> bool:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"conn-{i}".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(1024), 90)
        writer.close()
        return data == f"conn-{i}".encode()

    results = await asyncio.gather(*(one(i) for i in range(COUNT)), return_exceptions=True)
    return sum(r is True for r in results)


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    mode = sys.argv[1]
    if mode == "stream":
        for c in chunks():
            sys.stdout.buffer.write(c)
    elif mode == "digest":
        print(digest())
    elif mode == "concurrent":
        print(asyncio.run(concurrent(sys.argv[2], int(sys.argv[3]))))
    elif mode == "serve":
        port, seconds = int(sys.argv[2]), float(sys.argv[3])
        httpd = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        threading.Thread(target=asyncio.run, args=(hold_and_echo(port + 1),), daemon=True).start()
        threading.Event().wait(seconds)


if __name__ == "__main__":
    main()
