"""A loopback HTTP server that answers every request as a test tells it: a status and body
after a delay, a hang, or a connection closed without an answer. It stands in for DynamoDB where a real server
cannot be made to fail a given way. Bounded: it only serves 127.0.0.1 and stops with the test."""
import http.server
import threading
import time


class Stub:
    def __init__(self, ssl_context=None):
        """``ssl_context``: serve https with it (a server-side ssl.SSLContext); default http."""
        self.status = 200
        self.body = b"{}"
        self.delay = 0.0
        self.hang = False
        self.reset = False  # close the connection without an answer
        self.requests = 0
        self._stop = threading.Event()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(n)
                stub.requests += 1
                if stub.reset:
                    self.close_connection = True
                    return
                if stub.hang:
                    stub._stop.wait(30)
                    return
                if stub.delay:
                    time.sleep(stub.delay)
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("x-amzn-RequestId", "REQ-1234")
                self.send_header("Content-Length", str(len(stub.body)))
                self.end_headers()
                self.wfile.write(stub.body)

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 1024  # a thousand connections at once (test_concurrency)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def error(self, status, name, message="stub says no"):
        self.status = status
        self.body = ('{"__type":"com.amazonaws.dynamodb.v20120810#%s","message":"%s"}' % (name, message)).encode()

    def close(self):
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    # A stub in a process of its own (so its threads never wait on the tested process's GIL):
    # python3 stub_server.py DELAY_SECONDS; prints its URL, then serves until stdin closes.
    import sys
    s = Stub()
    s.delay = float(sys.argv[1])
    print(s.url, flush=True)
    sys.stdin.read()
    s.close()
