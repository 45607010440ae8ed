"""The heap reuse that dask workers' environment turns off, given back while skem works on a block.

A dask.distributed nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also
fixes glibc's mmap threshold at 128 KiB: every larger array is then mapped and faulted in page by
page, each time. Page faults (``ru_minflt``) show the difference independently of timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

glibc = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None
pytestmark = pytest.mark.skipif(not glibc, reason="glibc's allocator only")

#: Allocates and frees a 1 MiB array 64 times, outside, inside and after skem's context; prints
#: the minor page faults of each phase.
FAULTS = textwrap.dedent(
    """
    import resource
    import numpy as np
    from skem._dask import _BLOCK_ALLOCATOR, block_allocator

    def faults(n=64):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(n):
            np.ones(2**17).sum()  # 1 MiB, freed at once
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    outside = faults()
    with block_allocator():
        with block_allocator():  # nested (concurrent tasks of one process): one setting
            inside = faults()
        inside += faults()
    after = faults()
    print(outside, inside, after, _BLOCK_ALLOCATOR.running, bool(_BLOCK_ALLOCATOR.libc))
    """
)


def _faults(environment):
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    env.update(environment)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *sys.path])
    output = subprocess.run([sys.executable, "-c", FAULTS], env=env, check=True,
                            capture_output=True, text=True).stdout.split()
    return [int(value) for value in output[:4]] + [output[4] == "True"]


def test_arrays_reuse_the_heap_inside_and_are_mapped_again_after():
    outside, inside, after, running, active = _faults({"MALLOC_TRIM_THRESHOLD_": "65536"})
    pages = 2**20 // os.sysconf("SC_PAGE_SIZE")
    # As a nanny's worker: each 1 MiB array is a fresh mapping, faulted in page by page.
    assert outside >= 64 * pages * 0.9
    # Inside: from the heap, faulted in once (pages of the first array, a few more).
    assert inside < 8 * pages
    # After the last task: the nanny's setting is back.
    assert after >= 64 * pages * 0.9
    assert running == 0 and active


def test_nothing_changes_where_glibc_adapts_by_itself():
    # No MALLOC_TRIM_THRESHOLD_: glibc's dynamic threshold already reuses the heap, and the
    # context leaves the allocator alone.
    outside, inside, after, running, active = _faults({})
    pages = 2**20 // os.sysconf("SC_PAGE_SIZE")
    assert outside < 8 * pages and inside < 8 * pages and after < 8 * pages
    assert running == 0 and not active
    # A chosen mmap threshold is respected too.
    *_, active = _faults({"MALLOC_TRIM_THRESHOLD_": "65536", "MALLOC_MMAP_THRESHOLD_": "131072"})
    assert not active


def test_a_cluster_fit_works_on_its_blocks_with_heap_reuse_and_leaves_it_as_found():
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    from skem import NegBinMixture
    from skem.datasets import make_negbin_mixture

    X, _ = make_negbin_mixture(4000, weights=(0.5, 0.5), means=((2.0, 9.0), (12.0, 1.0)),
                               dispersion=0.2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cluster start-up chatter
        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                           host="127.0.0.1", dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        assert list(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == ["65536"]

        def state():
            from skem._dask import _BLOCK_ALLOCATOR

            libc = _BLOCK_ALLOCATOR.libc  # None until first used; else False or (..., trim)
            return libc if libc is None else (libc and libc[2]), _BLOCK_ALLOCATOR.running

        assert list(client.run(state).values()) == [(None, 0)]  # no block task yet
        model = NegBinMixture(2, random_state=0).fit(da.from_array(X, chunks=500))
        # Used (the trim threshold to restore read from the nanny's setting), and left.
        assert list(client.run(state).values()) == [(65536, 0)]
    reference = NegBinMixture(2, random_state=0).fit(X)
    np.testing.assert_allclose(model.means_, reference.means_, rtol=1e-8)
