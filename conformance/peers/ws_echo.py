"""A WebSocket echo server (PyPI websockets), for the login proxy's upgrade test
(tests/bridge.rs):

    python ws_echo.py PORT            (binds 127.0.0.1 only)

Every message is sent back prefixed with the Remote-User header the handshake carried, so
the test sees both the data path and the identity the proxy added.
"""
import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    who = ws.request.headers.get("Remote-User", "")
    async for message in ws:
        await ws.send(f"{who}: {message}")


async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1])) as server:
        await server.serve_forever()


asyncio.run(main())
