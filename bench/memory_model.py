"""The CUDA kernels' memory traffic as the host run models it (tests/cpp/memory_model.h), as a table.

``test_cuda_bodies tests/kernel_shapes.txt --memory-model OUT.json`` (ctest ``cuda_memory_model``,
which writes ``<build>/memory_model.json``) runs each memory-model case of tests/kernel_shapes.txt
through the instance the launcher chooses, on the host, and records, per case: the load and store
efficiency (the bytes each warp instruction asks for over the bytes of the 32-byte sectors it
touches, as Nsight Compute counts them), the unique sectors touched over the fewest that hold the
input and output, and the blocks launched (and waves of an H100). This prints them.

    python bench/memory_model.py build/cmake-cuda-OFF/memory_model.json [--markdown]
"""

import argparse
import json
import sys

COLUMNS = [
    ("kernel", "kernel"),
    ("pass", "pass"),
    ("dtype", "dtype"),
    ("layout", "layout"),
    ("window", "window"),
    ("shape", "shape"),
    ("load_efficiency", "loads"),
    ("store_efficiency", "stores"),
    ("unique_sector_ratio", "unique sectors"),
    ("blocks", "blocks"),
    ("waves", "H100 waves"),
    ("goals_met", "goals"),
]


def cell(record, key):
    value = record[key]
    if key == "goals_met":
        return "met" if value else "MISSED"
    if key == "waves":
        return f"{float(value):.2f}"
    if key in ("load_efficiency", "store_efficiency", "unique_sector_ratio"):
        return f"{float(value):.3f}"
    return str(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", help="the JSON test_cuda_bodies --memory-model wrote")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    with open(args.report) as f:
        records = json.load(f)
    rows = [[cell(r, key) for key, _ in COLUMNS] for r in records]
    headers = [title for _, title in COLUMNS]
    if args.markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + " --- |" * 6 + " ---: |" * 5 + " --- |")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
        for row in rows:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    aligned = [r for r in records if r["aligned"]]
    if aligned:
        print(
            f"{len(records)} cases; aligned ones: loads >= {min(r['load_efficiency'] for r in aligned):.3f}, "
            f"stores >= {min(r['store_efficiency'] for r in aligned):.3f}, unique sectors <= "
            f"{max(r['unique_sector_ratio'] for r in aligned):.3f}; goals missed: "
            f"{sum(not r['goals_met'] for r in records)}"
        )
    return 0 if all(r["goals_met"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
