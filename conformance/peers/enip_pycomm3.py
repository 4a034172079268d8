"""pycomm3 against our simulated Logix controller: LogixDriver open (tag list upload with
templates, Identity), reads and writes of scalars, arrays, slices, STRING and a UDT, close;
CIPDriver.generic_message Get Attributes All on Identity; list_identity.

The simulator must serve: SCADA=INT[1000] FLOAT=REAL[10] COUNT=DINT BIG=LINT[4]
FLAG=BOOL SMALL=SINT[4] TEXT=STRING and Valve (ValveUdt[2], tags.json).
Usage: enip_pycomm3.py HOST PORT
"""
import struct
import sys

from pycomm3 import CIPDriver, ClassCode, LogixDriver, Services

host, port = sys.argv[1], int(sys.argv[2])
path = f"{host}:{port}"
checks = 0


def check(cond, what):
    global checks
    assert cond, what
    checks += 1


def ok(tag):
    check(tag.error is None, f"{tag.tag}: {tag.error}")
    return tag


with LogixDriver(path) as plc:
    check(plc.connected, "connected")
    check(plc.info.get("product_name"), f"info {plc.info}")
    for name in ("SCADA", "FLOAT", "COUNT", "BIG", "FLAG", "SMALL", "TEXT", "Valve"):
        check(name in plc.tags, f"{name} not in tag list {sorted(plc.tags)}")
    check(plc.tags["SCADA"]["dimensions"][0] == 1000, plc.tags["SCADA"])
    check(plc.tags["Valve"]["data_type"]["name"] == "ValveUdt", plc.tags["Valve"])

    # Scalars of every type, written then read back.
    writes = [("SCADA[0]", 42), ("FLOAT[2]", 1.5), ("COUNT", -123456),
              ("BIG[1]", 2**40 + 7), ("FLAG", True), ("SMALL[3]", -5)]
    for w in plc.write(*writes):
        ok(w)
    for (name, value), r in zip(writes, plc.read(*[n for n, _ in writes])):
        check(ok(r).value == value, f"{name}: {r.value} != {value}")

    # Array slices, including one large enough to need Read Tag Fragmented.
    ok(plc.write("SCADA[10]{5}", [1, 2, 3, 4, 5]))
    check(ok(plc.read("SCADA[10]{5}")).value == [1, 2, 3, 4, 5], "slice")
    ok(plc.write("SCADA[500]{400}", list(range(400))))
    whole = ok(plc.read("SCADA{1000}")).value
    check(len(whole) == 1000 and whole[500:900] == list(range(400)) and whole[0] == 42, "array")

    # Logix STRING.
    ok(plc.write("TEXT", "hello, world"))
    check(ok(plc.read("TEXT")).value == "hello, world", "string")

    # A UDT: members and the whole structure.
    ok(plc.write("Valve[1].Position", 77))
    ok(plc.write("Valve[1].Label", "inlet"))
    ok(plc.write("Valve[1].Open", True))
    v = ok(plc.read("Valve[1]")).value
    check(v == {"Open": True, "Position": 77, "Label": "inlet"}, f"udt {v}")

    # An unknown tag is an error, not an exception.
    check(plc.read("NoSuchTag").error is not None, "unknown tag")

with CIPDriver(path) as drv:
    r = drv.generic_message(service=Services.get_attributes_all,
                            class_code=ClassCode.identity_object, instance=1,
                            connected=False, name="identity")
    check(r.error is None, f"get attributes all: {r.error}")
    vendor, device_type = struct.unpack_from("<HH", r.value)
    name_len = r.value[14]
    name = r.value[15:15 + name_len].decode()
    check(vendor == 1 and device_type == 14 and name, f"identity {vendor} {device_type} {name}")

ident = CIPDriver.list_identity(path)
check(ident and ident["product_name"] == name, f"list_identity {ident}")
print(f"pycomm3: {checks} checks passed")
