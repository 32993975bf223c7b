import subprocess
import sys

# A child with a clean heap: 200 MB in 64 KB pieces (below glibc's mmap threshold,
# so they come from the heap), all freed but the last one, which pins the top of
# the heap: only a trim gives the pages under it back.
CHILD = """
import sys
from clipmatch.inference.memory import memory_release

def resident_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024

pieces = [bytearray(64 << 10) for _ in range(3200)]
last = pieces[-1]
del pieces
before = resident_mb()
released = memory_release()
print(released, before, resident_mb())
"""


def test_a_release_gives_freed_heap_pages_back_to_the_system():
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True
    ).stdout.split()

    released, before, after = out[0] == "True", int(out[1]), int(out[2])
    assert released
    assert before - after >= 150, (before, after)
