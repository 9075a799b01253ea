"""TCP request-response latency and connection setup rate. Standard library only: `ksi-multi bench` runs
this file's text with `python3 -c` in the toolbox image's pods and on the hosts alike.

  probe.py serve ADDRESS PORT SECONDS  echo server on ADDRESS (0.0.0.0: every address); stops by itself
  probe.py rr HOST PORT COUNT          one connection, COUNT 1-byte round trips: {"p50_us", "p99_us"}
  probe.py connect HOST PORT SECONDS   new connection, 1 byte there and back, close: {"per_s"}
"""

import json
import socket
import socketserver
import sys
import threading
import time


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := self.request.recv(65536):
            self.request.sendall(data)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def rr(host: str, port: int, count: int) -> dict:
    with socket.create_connection((host, port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(count):
            started = time.perf_counter()
            s.sendall(b"x")
            s.recv(1)
            times.append(time.perf_counter() - started)
    times.sort()
    return {"p50_us": round(times[len(times) // 2] * 1e6, 1), "p99_us": round(times[int(len(times) * 0.99)] * 1e6, 1)}


def connect(host: str, port: int, seconds: float) -> dict:
    done, deadline = 0, time.monotonic() + seconds
    started = time.monotonic()
    while time.monotonic() < deadline:
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"x")
            s.recv(1)
        done += 1
    return {"per_s": round(done / (time.monotonic() - started), 1)}


def main() -> None:
    mode = sys.argv[1]
    if mode == "serve":
        server = Server((sys.argv[2], int(sys.argv[3])), Echo)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print("serving", flush=True)
        time.sleep(float(sys.argv[4]))
    elif mode == "rr":
        print(json.dumps(rr(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    elif mode == "connect":
        print(json.dumps(connect(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))))


if __name__ == "__main__":
    main()
