"""`/liveness` and `/readiness` over HTTP on HealthHost:HealthPort (Calico's endpoints).

Live: the owner loop has reported within the watchdog timeout. Ready: live, in sync with the
datastore, and the first apply after in-sync has completed.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable


class HealthState:
    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self._beat = clock()
        self.ready_flag = False

    def beat(self) -> None:
        self._beat = self.clock()

    def live(self) -> bool:
        return self.clock() - self._beat < self.timeout

    def ready(self) -> bool:
        return self.live() and self.ready_flag


class HealthServer:
    def __init__(self, state: HealthState, host: str, port: int) -> None:
        st = state

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/liveness":
                    ok = st.live()
                elif self.path == "/readiness":
                    ok = st.ready()
                else:
                    self.send_error(404)
                    return
                body = (b"ok\n" if ok else b"not ok\n")
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="health",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
