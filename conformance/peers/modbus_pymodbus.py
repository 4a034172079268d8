"""pymodbus' client against our Modbus simulator: every supported function code and the
exception cases, asserting the values read back.

The simulator must serve (cpppo register specs):
    1-100=0  10001-10016=1  30001-30010=7  40001-40100=99
Usage: modbus_pymodbus.py HOST PORT {socket|rtu}
"""
import sys

from pymodbus.client import ModbusTcpClient
from pymodbus.framer import FramerType
from pymodbus.pdu.diag_message import ReturnQueryDataRequest

host, port, framing = sys.argv[1], int(sys.argv[2]), sys.argv[3]
framer = FramerType.SOCKET if framing == "socket" else FramerType.RTU
client = ModbusTcpClient(host, port=port, framer=framer, timeout=5, retries=0)
assert client.connect(), "connect"
checks = 0


def ok(rr, what):
    global checks
    assert not rr.isError(), f"{what}: {rr}"
    checks += 1
    return rr


def exception(rr, code, what):
    global checks
    assert rr.isError(), f"{what}: expected exception {code}, got {rr}"
    assert rr.exception_code == code, f"{what}: exception {rr.exception_code} != {code}"
    checks += 1


# FC 1, 5, 15: coils 1-100 start at 0.
assert ok(client.read_coils(0, count=16), "read coils").bits[:16] == [False] * 16
ok(client.write_coil(3, True), "write coil")
ok(client.write_coils(10, [True, False, True, True]), "write coils")
bits = ok(client.read_coils(0, count=16), "read coils back").bits[:16]
assert bits == [False] * 3 + [True] + [False] * 6 + [True, False, True, True] + [False] * 2, bits
# FC 2: discrete inputs 10001-10016 are 1.
assert ok(client.read_discrete_inputs(0, count=16), "discrete").bits[:16] == [True] * 16
# FC 4: input registers 30001-30010 are 7.
assert ok(client.read_input_registers(0, count=10), "input regs").registers == [7] * 10
# FC 3, 6, 16: holding registers 40001-40100 are 99.
assert ok(client.read_holding_registers(0, count=100), "holding").registers == [99] * 100
ok(client.write_register(8, 999), "write register")
ok(client.write_registers(10, [1, 2, 3]), "write registers")
regs = ok(client.read_holding_registers(8, count=5), "holding back").registers
assert regs == [999, 99, 1, 2, 3], regs
# FC 22: (99 & 0xF0F0) | (0x000F & ~0xF0F0) = 0x6F.
ok(client.mask_write_register(address=20, and_mask=0xF0F0, or_mask=0x000F), "mask write")
assert ok(client.read_holding_registers(20, count=1), "masked").registers == [0x6F]
# FC 23: the write happens before the read.
rw = ok(client.readwrite_registers(read_address=30, read_count=3, write_address=30,
                                   values=[5, 6, 7]), "read/write")
assert rw.registers == [5, 6, 7], rw.registers
# FC 7, 8/0, 17, 43/14.
ok(client.read_exception_status(), "exception status")
echo = ok(client.execute(False, ReturnQueryDataRequest(message=[0x1234], dev_id=1)), "diag echo")
assert echo.message in (b"\x12\x34", [0x1234]), echo.message
ok(client.report_device_id(), "report server id")
info = ok(client.read_device_information(read_code=1, object_id=0), "device id")
assert set(info.information) >= {0, 1, 2}, info.information

# Exceptions: address past the end (2) for each table, exact to the bit for coils.
exception(client.read_holding_registers(100, count=1), 2, "holding past end")
exception(client.read_holding_registers(95, count=10), 2, "holding range crossing end")
exception(client.read_input_registers(10, count=1), 2, "input past end")
exception(client.read_coils(99, count=2), 2, "coil 101")
assert ok(client.read_coils(99, count=1), "coil 100").bits[0] is False
exception(client.write_register(100, 1), 2, "write past end")
# Illegal function (1): Read FIFO Queue (24) is not served.
exception(client.read_fifo_queue(address=0), 1, "FC 24")
client.close()
print(f"pymodbus {framing}: {checks} checks passed")
