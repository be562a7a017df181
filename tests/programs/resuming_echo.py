"""Two parties whose protocol survives a broken connection, for the proxy
restart test: Sequre framing (8-byte LE length, payload), each payload
starting with its frame number.

    resuming_echo.py 0 PORT            # echoes every frame; stops at frame -1
    resuming_echo.py 1 PORT COUNT      # sends COUNT frames, 8 unanswered at most

Party 1 dials PORT; when the connection breaks it dials again (for 60 s at
most) and sends again every frame not yet echoed. Party 0 listens once and
echoes whatever arrives. Both print what they saw: frames, repeats, redials.
"""
import hashlib
import socket
import struct
import sys
import time

WINDOW = 8


def payload(i: int) -> bytes:
    body = hashlib.sha256(str(i).encode()).digest() * (1 + i % 40)
    return struct.pack("<q", i) + body


def read_exact(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_frame(sock) -> bytes:
    (length,) = struct.unpack("<q", read_exact(sock, 8))
    return read_exact(sock, length)


def send_frame(sock, data: bytes) -> None:
    sock.sendall(struct.pack("<q", len(data)) + data)


def echo(port: int) -> None:
    server = socket.create_server(("127.0.0.1", port))
    server.settimeout(120)
    conn, _ = server.accept()
    conn.settimeout(120)
    seen, repeats = set(), 0
    while True:
        data = read_frame(conn)
        (i,) = struct.unpack_from("<q", data)
        if i == -1:
            break
        if data != payload(i):
            sys.exit(f"party 0: frame {i} arrived altered")
        repeats += i in seen
        seen.add(i)
        send_frame(conn, data)
    conn.close()
    print(f"party 0: {len(seen)} frames, {repeats} sent again")


def dial(port: int, deadline: float):
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=1)
            sock.settimeout(30)
            return sock
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"party 1: cannot reach port {port}")
            time.sleep(0.05)


def client(port: int, count: int) -> None:
    echoed, repeats, redials, low = set(), 0, 0, 0
    sock = dial(port, time.monotonic() + 60)
    while len(echoed) < count:
        try:
            while low in echoed:  # frames below low are all echoed
                low += 1
            pending = [i for i in range(low, min(count, low + 2 * WINDOW)) if i not in echoed][:WINDOW]
            for i in pending:
                send_frame(sock, payload(i))
            while not echoed.issuperset(pending):  # echoes of an earlier window may come too
                data = read_frame(sock)
                (i,) = struct.unpack_from("<q", data)
                if data != payload(i):
                    sys.exit(f"party 1: echo of frame {i} arrived altered")
                repeats += i in echoed
                echoed.add(i)
        except (ConnectionError, socket.timeout, OSError) as exc:
            print(f"party 1: connection broke ({exc!r}); dialling again", flush=True)
            sock.close()
            redials += 1
            if redials > 5:
                sys.exit("party 1: the connection broke more than 5 times")
            sock = dial(port, time.monotonic() + 60)
    send_frame(sock, struct.pack("<q", -1))
    sock.close()
    print(f"party 1: {len(echoed)} of {count} echoed, {repeats} twice, {redials} redials")


if __name__ == "__main__":
    if sys.argv[1] == "0":
        echo(int(sys.argv[2]))
    else:
        client(int(sys.argv[2]), int(sys.argv[3]))
