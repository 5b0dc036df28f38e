"""Device choice, mixed precision and seeding (helpers.device); the process's allocator
(helpers.keep_freed_memory)."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ALLOCATE = """
import hashlib, resource, torch
import helpers
from helpers import models
torch.manual_seed(0)
m = models.create("resnet10t", 10, img_size=32).eval()
x = torch.rand(64, 3, 32, 32)
with torch.inference_mode():
    digest = hashlib.sha256(m(x).numpy().tobytes()).hexdigest()
torch.ones(2**24).sum()  # 64 MiB, once: the heap grows
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(2**24).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, digest)
"""


def _faults_and_digest(policy: str) -> tuple[int, str]:
    env = {**os.environ, "HELPERS_MALLOC": policy}
    out = subprocess.run([sys.executable, "-c", ALLOCATE], env=env, check=True, text=True,
                         capture_output=True).stdout.split()
    return int(out[-2]), out[-1]


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc's mallopt")
def test_freed_memory_is_reused_without_changing_results():
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    huge = thp.exists() and "[always]" in thp.read_text()  # a fault may map 2 MiB at once
    pages = 2**26 // (2**21 if huge else os.sysconf("SC_PAGE_SIZE"))  # one 64 MiB buffer
    kept, kept_digest = _faults_and_digest("keep")
    system, system_digest = _faults_and_digest("system")
    assert kept < pages  # ten buffers allocated and freed: the first one's pages reused
    assert system > 5 * pages  # glibc's own policy: fresh pages every time
    assert kept_digest == system_digest
