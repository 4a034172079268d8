"""A pymodbus Modbus/TCP server for our client and poller to talk to.

Usage: modbus_pymodbus_server.py PORT [socket|rtu]

Serves, for every unit: coils 1-100 alternating on/off, discrete inputs 10001-10016 on,
input registers 30001-30010 = 7, holding registers 40001-40100 = 99. Prints "ready" on
stdout once listening, then serves until killed.
"""

import asyncio
import logging
import sys

from pymodbus import FramerType
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusTcpServer


async def main(port: int, framing: str) -> None:
    logging.disable(logging.WARNING)
    # pymodbus' blocks are addressed from 1: block address 1 is protocol address 0.
    device = ModbusDeviceContext(
        co=ModbusSequentialDataBlock(1, [i % 2 == 0 for i in range(100)]),
        di=ModbusSequentialDataBlock(1, [True] * 16),
        ir=ModbusSequentialDataBlock(1, [7] * 10),
        hr=ModbusSequentialDataBlock(1, [99] * 100),
    )
    context = ModbusServerContext(devices=device, single=True)
    framer = FramerType.RTU if framing == "rtu" else FramerType.SOCKET
    server = ModbusTcpServer(context, framer=framer, address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0.5)
    print("ready", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "socket"))
