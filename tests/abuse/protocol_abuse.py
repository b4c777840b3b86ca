"""Protocol abuse against `serve`, as an attacker would try it, with no
credentials: each attack on its own connection, then a normal request on a
fresh one must still be answered, and the process must still be running.

Usage: protocol_abuse.py HOST_HARNESS"""
import os
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def attack(port, payload, wait=1.0, trickle=None):
    """Sends `payload` (or trickles it), reads what comes back, closes."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return b""
    try:
        if trickle:
            for b in payload:
                s.sendall(bytes([b]))
                time.sleep(trickle)
        else:
            s.sendall(payload)
        s.settimeout(wait)
        try:
            return s.recv(200)
        except OSError:
            return b""
    except OSError:
        return b""
    finally:
        s.close()


ATTACKS = [
    ("a 100 GB Content-Length, body never sent",
     b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\nabc"),
    ("a 100 GB Content-Length on an unknown route",
     b"PUT /nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"),
    ("a huge header (1 MiB)",
     b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"),
    ("ten thousand headers",
     b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(10000)) + b"\r\n"),
    ("bad chunking",
     b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n0\r\n\r\n"),
    ("a chunk of 2^64 - 1 bytes",
     b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc"),
    ("both Content-Length and chunked",
     b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("a TLS ClientHello on the plain port",
     bytes.fromhex("16030100a5010000a10303") + os.urandom(32) + b"\x00\x00\x02\x13\x01\x01\x00"),
    ("binary garbage",
     os.urandom(4096)),
    ("a pipelined flood of 2,000 requests",
     b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2000),
    ("a request line of 64 KiB",
     b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
]


def main(host_harness):
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="abuse-")
    env = dict(os.environ, STRIPE_API_KEY="sk_test_abuse")
    serve = subprocess.Popen(
        [host_harness, "serve", "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{free_port()}",
         "--db", f"{tmp}/serve.db",
         "--account", "acct_abuse", "--webhook-secret", "whsec_abuse", "--sync-every-secs", "0",
         "--stripe-api-base", "http://127.0.0.1:9"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/serve.log", "w"))
    failed = 0
    try:
        for _ in range(200):
            if healthy(port):
                break
            time.sleep(0.05)
        else:
            sys.exit("serve never became healthy")
        for name, payload in ATTACKS:
            answer = attack(port, payload)
            status = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "(closed)"
            ok = serve.poll() is None and healthy(port)
            failed += not ok
            print(f"{'ok' if ok else 'FAILED'}: {name}: {status}")
        # A slow client trickling its headers while others are served.
        try:
            slow = socket.create_connection(("127.0.0.1", port))
            slow.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            slow = None
        ok = serve.poll() is None and healthy(port)
        failed += not ok
        print(f"{'ok' if ok else 'FAILED'}: a slow client holding a half-sent request, others served")
        # ...and serve closes it once its headers are overdue (10 s), well
        # within 35 s: a slow-loris cannot hold connections for ever.
        if slow:
            slow.settimeout(35)
            started = time.time()
            try:
                answer = slow.recv(200)
            except OSError:
                answer = None
            took = time.time() - started
            ok = answer is not None and took < 35 and (answer == b"" or answer.startswith(b"HTTP/1.1 408"))
            failed += not ok
            print(f"{'ok' if ok else 'FAILED'}: the half-sent request closed after {took:.1f} s: {answer!r}"[:160])
            slow.close()
        # A thousand idle connections: /healthz still answers within 1 s.
        idle = []
        for _ in range(1000):
            try:
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        started = time.time()
        ok = healthy(port) and time.time() - started < 1.0
        failed += not ok
        print(f"{'ok' if ok else 'FAILED'}: {len(idle)} idle connections open, /healthz answered in {time.time() - started:.2f} s")
        for s in idle:
            s.close()
    finally:
        alive = serve.poll() is None
        if alive:
            serve.terminate()
        serve.wait(timeout=30)
    if not alive:
        print(open(f"{tmp}/serve.log").read()[-2000:])
        sys.exit("FAILED: serve died")
    if failed:
        sys.exit(f"FAILED: {failed} attacks left serve unable to serve")
    print(f"serve survived all {len(ATTACKS) + 3} attacks and stopped on SIGTERM (exit {serve.returncode})")


if __name__ == "__main__":
    main(sys.argv[1])
