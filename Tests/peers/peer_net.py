"""What the pymodbus peers share: a free loopback port, and waiting until a server listens on it."""
import asyncio
import socket


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def wait_listening(port):
    for _ in range(500):
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.01)
    raise SystemExit("server did not start")
