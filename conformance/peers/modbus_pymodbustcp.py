"""pyModbusTCP's client against our Modbus simulator (same register specs as
modbus_pymodbus.py). Usage: modbus_pymodbustcp.py HOST PORT"""
import sys

from pyModbusTCP.client import ModbusClient

host, port = sys.argv[1], int(sys.argv[2])
c = ModbusClient(host=host, port=port, unit_id=1, auto_open=True, timeout=5)
assert c.read_holding_registers(0, 10) == [99] * 10, c.last_error_as_txt
assert c.write_multiple_registers(40, [11, 22, 33])
assert c.read_holding_registers(40, 3) == [11, 22, 33]
assert c.write_single_register(50, 0xBEEF)
assert c.read_holding_registers(50, 1) == [0xBEEF]
assert c.read_input_registers(0, 10) == [7] * 10
assert c.write_single_coil(60, True)
assert c.write_multiple_coils(61, [False, True])
assert c.read_coils(60, 3) == [True, False, True]
assert c.read_discrete_inputs(0, 16) == [True] * 16
assert c.read_holding_registers(100, 1) is None
assert c.last_except == 2, c.last_except  # illegal data address
c.close()
print("pyModbusTCP: 11 checks passed")
