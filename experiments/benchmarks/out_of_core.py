"""Out-of-core exact EM (rows read from a .npy memory map in chunks each iteration) against the in-memory fit.

Question: how much does reading the rows from disk every iteration cost per
point, against ``se.fit`` on the array in memory? Both run exact EM on the same
Gaussian-mixture points from the same start; the results are checked equal.
Peak memory: the resident set size is read after the out-of-core fit, before
the points are loaded into memory for the in-memory one.

Run: ``python experiments/benchmarks/out_of_core.py [--quick] [--num-points N] [--chunk-rows C]``.
The file is written to a temporary folder (N · D · 8 bytes) and removed.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402

import stochem as se  # noqa: E402

NUM_FEATURES, NUM_COMPONENTS, NUM_ITERS = 4, 5, 5


def peak_rss_megabytes() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def write_points(path: Path, num_points: int, block: int = 1 << 20) -> None:
    """The points, written block by block (never all in memory)."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(num_points, NUM_FEATURES))
    for start in range(0, num_points, block):
        stop = min(start + block, num_points)
        array[start:stop] = _common.gaussian_clusters(stop - start, NUM_FEATURES, NUM_COMPONENTS, seed=start)
    array.flush()
    del array


def main() -> None:
    args = _common.arguments(__doc__.splitlines()[0], num_points=(int, 4_000_000, "rows of the file"),
                             chunk_rows=(int, 1 << 18, "rows per chunk"))
    num_points = 200_000 if args.quick else args.num_points
    model = se.models.GaussianMixture(NUM_COMPONENTS)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "points.npy"
        write_points(path, num_points)
        start_rows = np.load(path, mmap_mode="r")[:20_000]
        init = se.fit(model, np.array(start_rows), num_iters=0).params  # seeded k-means++ start
        rss_before = peak_rss_megabytes()

        se.fit_out_of_core(model, path, init=init, num_iters=1, chunk_rows=args.chunk_rows)  # compile
        begin = time.perf_counter()
        chunked = se.fit_out_of_core(model, path, init=init, num_iters=NUM_ITERS, chunk_rows=args.chunk_rows)
        chunked_seconds = (time.perf_counter() - begin) / (NUM_ITERS + 1)  # T E-steps + the final ℓ pass
        rss_chunked = peak_rss_megabytes()

        points = np.load(path)
        se.fit(model, points, init=init, num_iters=NUM_ITERS)  # compile
        begin = time.perf_counter()
        in_memory = se.fit(model, points, init=init, num_iters=NUM_ITERS)
        in_memory.params.means.block_until_ready()
        memory_seconds = (time.perf_counter() - begin) / (NUM_ITERS + 1)
        rss_memory = peak_rss_megabytes()
    worst = float(np.max(np.abs(np.asarray(chunked.params.means) - np.asarray(in_memory.params.means))))
    file_megabytes = num_points * NUM_FEATURES * 8 / 2**20
    _common.print_summary("Out-of-core exact EM vs in memory", {
        **_common.machine_summary(),
        "load (uptime)": os.getloadavg(),
        "points": f"{num_points} x {NUM_FEATURES} (file {file_megabytes:.0f} MiB), K = {NUM_COMPONENTS}",
        "chunk rows": args.chunk_rows,
        "max |means difference|": f"{worst:.2e}",
    })
    _common.print_table(
        ["fit", "ns per point per iteration", "peak RSS (MiB)"],
        [["out of core (.npy memory map)", f"{chunked_seconds / num_points * 1e9:.1f}", f"{rss_chunked:.0f}"],
         ["in memory", f"{memory_seconds / num_points * 1e9:.1f}", f"{rss_memory:.0f}"]])
    print(f"RSS before either fit: {rss_before:.0f} MiB")
    ratio = chunked_seconds / memory_seconds
    _common.report_goals(args, [
        {"goal": "out-of-core time per point / in-memory", "target": "<= 1.3x", "measured": f"{ratio:.2f}x",
         "met": ratio <= 1.3},
        {"goal": "same fit", "target": "means to 1e-8", "measured": f"{worst:.1e}", "met": worst <= 1e-8},
    ])


if __name__ == "__main__":
    main()
