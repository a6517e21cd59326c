#!/usr/bin/env python3
"""Does writing one file from two threads help? Writes FILE's bytes to a new file in the same
directory with one thread and with two (`pwrite` of each half, `sync_file_range` every 8 MB
as graphopt's writer does), then fsyncs; prints the time of the writes, of the whole and the
CPU time, alternating, for --runs rounds. Standard library only.

    python3 bench/parallel_write.py target/tmp/compare_tf/resnet50.pb --runs 4
"""
import argparse
import os
import threading
import time

CHUNK = 8 << 20


def write_with(data, out, threads):
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    parts = [(i * len(data) // threads, (i + 1) * len(data) // threads) for i in range(threads)]
    view = memoryview(data)

    def write(start, end):
        offset = start
        while offset < end:
            stop = min(offset + CHUNK, end)
            os.pwrite(fd, view[offset:stop], offset)
            if hasattr(os, "sync_file_range"):
                os.sync_file_range(fd, offset, stop - offset, os.SYNC_FILE_RANGE_WRITE)
            offset = stop

    start, cpu = time.perf_counter(), time.process_time()
    workers = [threading.Thread(target=write, args=part) for part in parts]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    written = time.perf_counter()
    os.fsync(fd)
    os.close(fd)
    done = time.perf_counter()
    os.unlink(out)
    return written - start, done - start, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    with open(args.file, "rb") as f:
        data = f.read()
    out = os.path.join(os.path.dirname(os.path.abspath(args.file)), ".parallel_write.out")
    for _ in range(args.runs):
        for threads in (1, 2):
            writes, total, cpu = write_with(data, out, threads)
            print(f"{threads} thread(s): writes {writes:.3f} s, with fsync {total:.3f} s, cpu {cpu:.3f} s")


if __name__ == "__main__":
    main()
