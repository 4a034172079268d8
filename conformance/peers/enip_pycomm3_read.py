"""Read tags with pycomm3 and print each result as one JSON line:
{"tag": ..., "value": ..., "error": ...}.

usage: enip_pycomm3_read.py HOST PORT TAG...
"""
import json
import sys

from pycomm3 import LogixDriver


def main():
    host, port, tags = sys.argv[1], sys.argv[2], sys.argv[3:]
    with LogixDriver(f"{host}:{port}") as plc:
        for tag in tags:
            result = plc.read(tag)
            print(json.dumps({"tag": tag, "value": result.value, "error": result.error}))


if __name__ == "__main__":
    main()
