"""Throughput of a Python EtherNet/IP client, for `compare` (benches/src/bin/compare.rs).

Usage: enip_client_rate.py cpppo|pycomm3 HOST PORT WORKLOAD DEPTH MULTIPLE SECONDS

WORKLOAD is read10 (SCADA[0-9]), write10 (SCADA[10-19] = 1..10) or tags100 (T0..T99,
DINT, one element each). Operations are issued until SECONDS have passed (timed from
after the connection is set up); prints one JSON line: ops, elements, failed, seconds.
pycomm3 has no pipelining (DEPTH is ignored) and packs several tags into a Multiple
Service Packet by itself (tags100 is one read of 100 tags).
"""
import json
import sys
import time

kind, host, port, workload = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
depth, multiple, seconds = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
WRITE = list(range(1, 11))
ELEMENTS = {"read10": 10, "write10": 10, "tags100": 1}[workload]


def cpppo_run():
    from cpppo.server.enip import client

    texts = {
        "read10": lambda i: "SCADA[0-9]",
        "write10": lambda i: "SCADA[10-19]=(INT)" + ",".join(map(str, WRITE)),
        "tags100": lambda i: "T%d" % (i % 100),
    }[workload]
    with client.connector(host=host, port=port, timeout=5) as conn:
        begun = time.time()
        deadline = begun + seconds

        def tags():
            i = 0
            while time.time() < deadline:
                yield texts(i)
                i += 1

        ops = failed = 0
        for _idx, _dsc, _op, _rpy, sts, val in conn.pipeline(
            operations=client.parse_operations(tags()),
            depth=depth,
            multiple=multiple,
            timeout=5,
        ):
            ops += 1
            if val is None:
                failed += 1
        return ops, failed, time.time() - begun


def pycomm3_run():
    from pycomm3 import LogixDriver

    with LogixDriver(f"{host}:{port}") as plc:
        begun = time.time()
        deadline = begun + seconds
        ops = failed = 0
        while time.time() < deadline:
            if workload == "read10":
                results = [plc.read("SCADA[0]{10}")]
            elif workload == "write10":
                results = [plc.write("SCADA[10]{10}", WRITE)]
            else:
                results = plc.read(*["T%d" % i for i in range(100)])
            ops += len(results)
            failed += sum(1 for r in results if r.error)
        return ops, failed, time.time() - begun


ops, failed, elapsed = {"cpppo": cpppo_run, "pycomm3": pycomm3_run}[kind]()
print(json.dumps({"ops": ops, "elements": ops * ELEMENTS, "failed": failed, "seconds": elapsed}))
