"""pylogix against our simulated Logix controller: Read/Write of single tags and lists,
GetTagList, GetDeviceProperties, and Discover (its broadcast redirected to 127.0.0.1,
since the test network is loopback only).

Same tags as enip_pycomm3.py. Usage: enip_pylogix.py HOST PORT
"""
import socket
import sys

from pylogix import PLC

host, port = sys.argv[1], int(sys.argv[2])
checks = 0


def check(cond, what):
    global checks
    assert cond, what
    checks += 1


def ok(resp):
    check(resp.Status == "Success", f"{resp.TagName}: {resp.Status}")
    return resp


with PLC(host, port=port) as comm:
    ok(comm.Write("SCADA[7]", 1234))
    check(ok(comm.Read("SCADA[7]")).Value == 1234, "single INT")
    ok(comm.Write("COUNT", 987654))
    check(ok(comm.Read("COUNT")).Value == 987654, "DINT")
    ok(comm.Write("FLOAT[1]", 2.25))
    check(ok(comm.Read("FLOAT[1]")).Value == 2.25, "REAL")
    ok(comm.Write("TEXT", "pylogix"))
    check(ok(comm.Read("TEXT")).Value == "pylogix", "STRING")
    ok(comm.Write("SCADA[20]", [7, 8, 9]))
    check(ok(comm.Read("SCADA[20]", 3)).Value == [7, 8, 9], "array")
    ok(comm.Write("Valve[0].Position", 55))
    check(ok(comm.Read("Valve[0].Position")).Value == 55, "UDT member")

    # Lists of tags (Multiple Service Packet).
    for r in comm.Write([("SCADA[30]", 11), ("COUNT", 22), ("FLAG", 1)]):
        ok(r)
    values = [ok(r).Value for r in comm.Read(["SCADA[30]", "COUNT", "FLAG", "SCADA[7]"])]
    check(values == [11, 22, True, 1234], f"list read {values}")
    check(comm.Read("NoSuchTag").Status != "Success", "unknown tag")

    tags = ok(comm.GetTagList()).Value
    names = {t.TagName for t in tags}
    check({"SCADA", "COUNT", "TEXT", "Valve"} <= names, f"tag list {sorted(names)}")
    valve = next(t for t in tags if t.TagName == "Valve")
    check(valve.DataType == "ValveUdt", f"Valve type {valve.DataType}")

    props = ok(comm.GetDeviceProperties()).Value
    check(props.Vendor and props.ProductName, f"device {props}")
    name = props.ProductName

# Discover broadcasts to 255.255.255.255 on comm.Port: send it to loopback instead.
_sendto = socket.socket.sendto


def loopback_sendto(self, data, *args):
    addr = args[-1]
    if isinstance(addr, tuple) and addr[0] == "255.255.255.255":
        addr = ("127.0.0.1", addr[1])
    return _sendto(self, data, *args[:-1], addr)


socket.socket.sendto = loopback_sendto
with PLC(host, port=port) as comm:
    found = ok(comm.Discover()).Value
    check(any(d.ProductName == name for d in found), f"discover {found}")
print(f"pylogix: {checks} checks passed")
