"""Host time per call of the op on a tiny tensor, where the kernel costs almost nothing: what
a GPU launch or a small CPU tensor pays around the kernel (dispatch, autograd, allocation).

    python bench/bench_host_time.py [--json out.json]

Prints the best of 7 repeats of 20000 calls, in microseconds, for clone (the floor), the op
called below autograd, and npr / npr_backward with and without an input that requires grad.
"""

import argparse
import timeit

import torch
from run_record import write_report

import npr_cuda


def per_call_us(fn, calls=20000, repeats=7) -> float:
    fn()
    return min(timeit.repeat(fn, number=calls, repeat=repeats)) / calls * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    x = torch.randn(8, 8)
    x_grad = x.clone().requires_grad_(True)
    rows = {"clone": per_call_us(lambda: x.clone())}
    with torch._C._AutoDispatchBelowAutograd():
        rows["npr below autograd"] = per_call_us(lambda: npr_cuda.npr(x))
    rows["npr"] = per_call_us(lambda: npr_cuda.npr(x))
    rows["npr_backward"] = per_call_us(lambda: npr_cuda.npr_backward(x))
    rows["npr, input requires grad"] = per_call_us(lambda: npr_cuda.npr(x_grad))
    for name, us in rows.items():
        print(f"{name:28} {us:6.2f} us  ({us / rows['clone']:.2f}x clone)")
    if args.json:
        write_report(args.json, "bench/bench_host_time.py", argv, rows_us=rows)


if __name__ == "__main__":
    main()
