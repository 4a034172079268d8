"""cpppo's own client tools against our simulated Logix controller: reads and writes of
every type, fragmented and not, --multiple, --depth, --connected, get_attribute (single
and all), ListIdentity/ListServices over TCP and UDP. Each tool is run as its users run
it (python -m ...), its exit status checked and its printed values compared.

Same tags as enip_pycomm3.py, plus NAME=SSTRING. Usage: enip_cpppo.py HOST PORT
"""
import ast
import re
import subprocess
import sys

host, port = sys.argv[1], int(sys.argv[2])
address = f"{host}:{port}"
checks = 0


def tool(module, *args):
    global checks
    cmd = [sys.executable, "-m", f"cpppo.server.enip.{module}", "-a", address, *args]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    out = run.stdout + run.stderr
    assert run.returncode == 0, f"{' '.join(cmd)} exited {run.returncode}:\n{out}"
    checks += 1
    return out


def client(*args):
    return tool("client", "--print", *args)


def value_of(out, tag, op="=="):
    """What cpppo printed for a read (==) or write (<=) of the tag named `tag`, e.g.
    `SCADA[1][  1-3  ]+  0 == [10, 20, 30]: 'OK'` gives `[10, 20, 30]`; a failed
    operation gives its status text instead, e.g. `'Status 255 [8455]'`."""
    for line in out.splitlines():
        m = re.match(r"\s*([A-Za-z_][\w:.]*)(\[.*?\]\+\s*\d+)?\s+" + re.escape(op) + r" (.*): (.*)$", line)
        if m and m.group(1) == tag:
            return m.group(3) if m.group(4) == "'OK'" else m.group(4)
    raise AssertionError(f"no {op} of {tag} in:\n{out}")


def check(cond, what):
    global checks
    assert cond, what
    checks += 1


writes = ["SCADA[1-3]=(INT)10,20,30", "COUNT=(DINT)-5", "FLOAT[0-1]=(REAL)1.5,2.5",
          "BIG[2]=(LINT)123456789012", "FLAG=(BOOL)1", "SMALL[0-1]=(SINT)-1,2",
          "NAME=(SSTRING)hello"]
for options in ([], ["--fragment"], ["--multiple", "--depth", "5"], ["--connected"]):
    wrote = client(*options, *writes)
    check(value_of(wrote, "SCADA", "<=") == "[10, 20, 30]", f"{options} write:\n{wrote}")
    out = client(*options, "SCADA[1-3]", "COUNT", "FLOAT[0-1]", "BIG[2]", "FLAG",
                 "SMALL[0-1]", "NAME")
    check(value_of(out, "SCADA") == "[10, 20, 30]", f"{options} SCADA:\n{out}")
    check(value_of(out, "COUNT") == "[-5]", f"{options} COUNT:\n{out}")
    check(value_of(out, "FLOAT") == "[1.5, 2.5]", f"{options} FLOAT:\n{out}")
    check(value_of(out, "BIG") == "[123456789012]", f"{options} BIG:\n{out}")
    check(value_of(out, "FLAG") in ("[1]", "[True]"), f"{options} FLAG:\n{out}")
    check(value_of(out, "SMALL") == "[-1, 2]", f"{options} SMALL:\n{out}")
    check("hello" in value_of(out, "NAME"), f"{options} NAME:\n{out}")

# cpppo's (STRING) is the CIP STRING 0xD0; TEXT is a Logix STRING structure, so the
# write is refused with a type mismatch (0xFF/0x2107), as a ControlLogix refuses it.
wrote = client("TEXT=(STRING)world")
check(value_of(wrote, "TEXT", "<=") == "'Status 255 [8455]'", f"STRING write:\n{wrote}")

def all_values(out, tag):
    """Every value cpppo printed for reads of `tag`, in order, including those of a
    partial reply (status 6: more data remains at a further offset)."""
    values = []
    for line in out.splitlines():
        m = re.match(r"\s*([A-Za-z_][\w:.]*)(\[.*?\]\+\s*\d+)?\s+== (\[.*\]): "
                     r"('OK'|'Status 6 ')$", line)
        if m and m.group(1) == tag:
            values += ast.literal_eval(m.group(3))
    return values


# A read larger than one reply, as cpppo's users do it on a ControlLogix: the first
# Read Tag Fragmented answers what fits in the 504-byte reply (249 INTs) with status 6;
# the rest is read at the byte offset given after '+'.
client("SCADA[500-999]=(INT)" + ",".join(str(i) for i in range(500)))
out = client("--fragment", "SCADA[500-999]")
check(all_values(out, "SCADA") == list(range(249)), f"first fragment:\n{out[:300]}")
check("'Status 6 '" in out, f"first fragment is partial:\n{out[-300:]}")
got = all_values(out, "SCADA")
for offset in (498, 996):
    out = client(f"SCADA[500-999]+{offset}")
    got += all_values(out, "SCADA")
check(got == list(range(500)), f"fragments:\n{got}")
check(out.rstrip().endswith("'OK'"), f"the last fragment completes:\n{out[-300:]}")

# An unknown tag fails (exit status 1).
run = subprocess.run([sys.executable, "-m", "cpppo.server.enip.client", "-a", address,
                      "NoSuchTag"], capture_output=True, text=True, timeout=60)
check(run.returncode == 1, f"unknown tag exit {run.returncode}")

# get_attribute: Get Attribute Single and Get Attributes All of the Identity object.
out = tool("get_attribute", "--print", "@1/1/1", "@1/1/7", "@1/1")
check("[1, 0]" in out, f"vendor:\n{out}")
out_all = tool("get_attribute", "--print", "-S", "@1/1")
# vendor 1, device type 14 (a PLC), then the rest of the Identity object.
check("@0x0001/1 == [1, 0, 14, 0, " in out_all, f"get attributes all:\n{out_all}")

# ListIdentity / ListServices over TCP and UDP.
for udp in ([], ["--udp"]):
    out = tool("list_services", *udp, "--list-identity", "-v")
    check("product_name" in out, f"list identity {udp}:\n{out}")
    out = tool("list_services", *udp, "-v")
    check("Communications" in out, f"list services {udp}:\n{out}")
print(f"cpppo: {checks} checks passed")
