"""A pyModbusTCP Modbus/TCP server for our client and poller to talk to.

Usage: modbus_pymodbustcp_server.py PORT

Serves coils 1-100 alternating on/off, discrete inputs 10001-10016 on, input registers
30001-30010 = 7, holding registers 40001-40100 = 99 (the rest of each table 0). Prints
"ready" on stdout once listening, then serves until killed.
"""

import sys
import time

from pyModbusTCP.server import DataBank, ModbusServer


def main(port: int) -> None:
    bank = DataBank()
    bank.set_coils(0, [i % 2 == 0 for i in range(100)])
    bank.set_discrete_inputs(0, [True] * 16)
    bank.set_input_registers(0, [7] * 10)
    bank.set_holding_registers(0, [99] * 100)
    server = ModbusServer(host="127.0.0.1", port=port, no_block=True, data_bank=bank)
    server.start()
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(int(sys.argv[1]))
