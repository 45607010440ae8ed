"""Alignment likelihoods from BAM: time and memory per million alignments; skem vs salmon -a vs RSEM.

Run on demand (not part of the tests)::

    python benchmarks/bench_bam.py [--fragments 200000] [--genes 300] [--seed 0] [--work DIR] [--no-tools]

1. A transcriptome from the simulator's exon structure (``make_transcript_reads``:
   isoforms share exons, gene 1 is a paralog of gene 0) with random exon
   sequences, and a second copy of some transcripts 0.5 % divergent (decoys
   for 0/1 compatibility). Paired-end fragments (normal length 250, sd 25,
   2 x 100 bases, 1 % substitutions) drawn from known abundances.
2. A BAM written with pysam from the true positions, plus secondary
   alignments on the divergent copies scored by their mismatches (no aligner
   needed): time and peak memory of ``read_alignments`` per million
   alignments, against a plain pysam pass over the same file (reading only
   the flag) and one reading the same fields as ``read_alignments`` (name,
   flag, reference, start, end, mate start, AS) and keeping nothing.
3. If bowtie2, salmon and RSEM are installed: the reads aligned by bowtie2
   with RSEM's settings (``-k 200``), then on that one BAM ``skem quant
   --alignments``, ``salmon quant -a`` and ``rsem-calculate-expression
   --alignments``: Spearman of counts with the truth, mean relative error for
   true count >= 10, truly absent transcripts given > 1 read, wall time and
   peak memory (of the process tree, from ``/usr/bin/time -v``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from skem import TranscriptQuantifier
from skem.datasets import make_transcript_reads
from skem.io import read_alignments

BASES = np.array(list("ACGT"))
READ = 100
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def transcriptome(n_genes, rng, seed):
    _, _, truth = make_transcript_reads(1000, n_genes=n_genes, fragment_length=READ, random_state=seed)
    exon_ids = sorted({e for t in truth.exons for e in t})
    # the simulator returns exon ids, not their lengths: draw lengths and sequences per exon id
    lengths = {e: int(rng.integers(80, 401)) for e in exon_ids}
    exon_seq = {e: "".join(rng.choice(BASES, lengths[e])) for e in exon_ids}
    names, seqs = [], []
    for name, exons in zip(truth.transcript_names, truth.exons):
        names.append(str(name))
        seqs.append("".join(exon_seq[e] for e in exons))
    # divergent copies of every 10th transcript: 0.5 % substitutions
    for k in range(0, len(seqs), 10):
        seq = np.array(list(seqs[k]))
        where = rng.random(seq.size) < 0.005
        seq[where] = [rng.choice([b for b in "ACGT" if b != s]) for s in seq[where]]
        names.append(f"{names[k]}.copy")
        seqs.append("".join(seq))
    return names, seqs


def simulate(names, seqs, n_fragments, rng):
    M = len(seqs)
    L = np.array([len(s) for s in seqs])
    tau = rng.lognormal(0, 1.5, M)
    tau[rng.random(M) < 0.15] = 0.0
    tau[L < 2 * READ] = 0.0  # no fragment of two reads fits (the draw below would never end)
    eff = np.maximum(L - 250 + 1, 1)
    nu = tau * eff / np.sum(tau * eff)
    counts = rng.multinomial(n_fragments, nu)
    fragments = []
    for k in np.flatnonzero(counts):
        for _ in range(counts[k]):
            while True:
                f = int(round(rng.normal(250, 25)))
                if 2 * READ <= f <= L[k]:
                    break
            fragments.append((k, int(rng.integers(0, L[k] - f + 1)), f))
    order = rng.permutation(len(fragments))
    fragments = [fragments[i] for i in order]
    truth = np.bincount([k for k, _, _ in fragments], minlength=M).astype(float)
    return fragments, truth


def mutate(read, rng, rate=0.01):
    read = np.array(list(read))
    where = rng.random(read.size) < rate
    read[where] = rng.choice(BASES, where.sum())
    return "".join(read)


def write_inputs(work, names, seqs, fragments, rng):
    with open(work / "transcripts.fa", "w") as fa:
        for name, seq in zip(names, seqs):
            fa.write(f">{name}\n{seq}\n")
    with open(work / "r1.fq", "w") as one, open(work / "r2.fq", "w") as two:
        for i, (k, s, f) in enumerate(fragments):
            frag = seqs[k][s : s + f]
            r1 = mutate(frag[:READ], rng)
            r2 = mutate(frag[-READ:].translate(COMPLEMENT)[::-1], rng)
            one.write(f"@f{i}/1\n{r1}\n+\n{'I' * READ}\n")
            two.write(f"@f{i}/2\n{r2}\n+\n{'I' * READ}\n")


def pysam_bam(path, names, seqs, fragments):
    """True proper pairs plus secondary pairs on the divergent copies, scored by mismatches."""
    import pysam

    index = {n: i for i, n in enumerate(names)}
    header = {"HD": {"VN": "1.6"}, "SQ": [{"SN": n, "LN": len(s)} for n, s in zip(names, seqs)]}
    n_records = 0
    with pysam.AlignmentFile(str(path), "wb", header=header) as bam:
        for i, (k, s, f) in enumerate(fragments):
            targets = [(k, 0)]
            copy = index.get(f"{names[k]}.copy")
            if copy is not None:
                a, b = seqs[k][s : s + f], seqs[copy][s : s + f]
                targets.append((copy, -6 * sum(x != y for x, y in zip(a, b))))
            for j, (t, score) in enumerate(targets):
                for mate, (start, mate_start) in enumerate(((s, s + f - READ), (s + f - READ, s))):
                    a = pysam.AlignedSegment(bam.header)
                    a.query_name = f"f{i}"
                    a.flag = 0x1 | 0x2 | (0x40, 0x80)[mate] | (0x20, 0x10)[mate] | (0x100 if j else 0)
                    a.reference_id, a.reference_start, a.cigarstring = t, start, f"{READ}M"
                    a.next_reference_id, a.next_reference_start = t, mate_start
                    a.template_length = f if mate == 0 else -f
                    a.set_tag("AS", score // 2)
                    bam.write(a)
                    n_records += 1
    return n_records


def plain_pass(path):
    """The cheapest pysam pass: each record read, only its flag looked at."""
    import pysam

    n = 0
    with pysam.AlignmentFile(str(path)) as bam:
        for record in bam.fetch(until_eof=True):
            n += record.flag & 1
    return n


def fields_pass(path):
    """A pysam pass that reads the fields read_alignments reads, and keeps nothing."""
    import pysam

    n = 0
    with pysam.AlignmentFile(str(path)) as bam:
        for record in bam.fetch(until_eof=True):
            record.query_name, record.flag, record.reference_id, record.reference_start
            record.reference_end, record.next_reference_start, record.get_tag("AS")
            n += 1
    return n


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def traced_peak(function, *args):
    tracemalloc.start()
    function(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def run_timed(command, log):
    """Wall seconds and peak resident MB of a command (process tree), via /usr/bin/time -v."""
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed, see {log}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return seconds, peak / 1024


def accuracy(estimate, truth, absent):
    keep = truth >= 10
    return {
        "spearman": round(float(spearmanr(estimate, truth)[0]), 3),
        "MRE (true >= 10)": round(float(np.mean(np.abs(estimate[keep] - truth[keep]) / truth[keep])), 3),
        "absent > 1 read": int(np.sum(estimate[absent] > 1)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fragments", type=int, default=200_000)
    parser.add_argument("--genes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="bench_bam_work")
    parser.add_argument("--no-tools", action="store_true",
                        help="only part 2 (read_alignments against plain pysam passes)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    work = Path(args.work)
    work.mkdir(exist_ok=True)

    names, seqs = transcriptome(args.genes, rng, args.seed)
    fragments, truth = simulate(names, seqs, args.fragments, rng)
    absent = truth == 0
    print(f"{len(names)} transcripts, {len(fragments)} fragments, {absent.sum()} transcripts without any")

    # ---- 2. a BAM from pysam: cost per million alignments
    n_records = pysam_bam(work / "sim.bam", names, seqs, fragments)
    millions = n_records / 1e6
    # best of 3 runs of each, interleaved: the machine's load varies more than the passes do
    t_plain = t_fields = t_read = np.inf
    for _ in range(3):
        t_plain = min(t_plain, timed(plain_pass, work / "sim.bam")[0])
        t_fields = min(t_fields, timed(fields_pass, work / "sim.bam")[0])
        seconds, aln = timed(read_alignments, work / "sim.bam")
        t_read = min(t_read, seconds)
    peak = traced_peak(read_alignments, work / "sim.bam")  # separately: tracing slows Python down
    print(f"\npysam BAM: {n_records} records; per 10^6 records: plain pysam pass (flag only) "
          f"{t_plain / millions:.2f} s, pysam pass reading the same fields {t_fields / millions:.2f} s, "
          f"read_alignments {t_read / millions:.2f} s ({t_read / t_plain:.1f} x the flag-only pass, "
          f"{t_read / t_fields:.1f} x the same-fields pass) and {peak / 2**20 / millions:.0f} MB "
          f"(traced peak); {aln.X.shape[0]} classes")
    start = time.perf_counter()
    fit = TranscriptQuantifier(x_includes_length=True, effective_lengths=aln.effective_lengths,
                               lengths=aln.transcript_lengths).fit(aln.X, sample_weight=aln.counts)
    print(f"fit: {time.perf_counter() - start:.2f} s, {fit.n_iter_} iterations; "
          f"{accuracy(fit.est_counts_, truth, absent)}")

    if args.no_tools:
        return
    tools = [shutil.which(t) for t in ("bowtie2", "salmon", "rsem-calculate-expression")]
    if not all(tools):
        print("\nbowtie2, salmon or RSEM missing: no comparison with the field's tools.")
        return
    # ---- 3. the field's tools on one bowtie2 BAM
    write_inputs(work, names, seqs, fragments, rng)
    subprocess.run(["rsem-prepare-reference", "--bowtie2", str(work / "transcripts.fa"),
                    str(work / "ref")], check=True, capture_output=True)
    bowtie = ["bowtie2", "-p", "2", "--sensitive", "--dpad", "0", "--gbar", "99999999",
              "--mp", "1,1", "--np", "1", "--score-min", "L,0,-0.1", "-I", "1", "-X", "1000",
              "--no-mixed", "--no-discordant", "-k", "200", "-x", str(work / "ref"),
              "-1", str(work / "r1.fq"), "-2", str(work / "r2.fq")]
    with open(work / "aln.sam", "w") as sam:
        subprocess.run(bowtie, check=True, stdout=sam, stderr=subprocess.DEVNULL)
    subprocess.run(["samtools", "view", "-b", "-o", str(work / "aln.bam"), str(work / "aln.sam")],
                   check=True)
    n_aln = int(subprocess.run(["samtools", "view", "-c", str(work / "aln.bam")],
                               capture_output=True, text=True).stdout)
    print(f"\nbowtie2 -k 200 (RSEM's settings): {n_aln} records")
    results = []
    skem_cli = [sys.executable, "-c", "import sys; from skem.cli import main; sys.exit(main())"]
    # RSEM's bowtie2 settings penalize a mismatch by 1 point: 5.7 log-likelihood per point
    seconds, mb = run_timed([*skem_cli, "-q", "quant", "--alignments", str(work / "aln.bam"),
                             "--score-scale", "5.7", "-o", str(work / "skem")], work / "skem.log")
    ours = pd.read_csv(work / "skem" / "abundance.tsv", sep="\t").set_index("target_id")
    results.append({"tool": "skem quant --alignments", "seconds": round(seconds, 1),
                    "peak MB": round(mb), **accuracy(ours.loc[names, "est_counts"].to_numpy(), truth, absent)})
    seconds, mb = run_timed(["salmon", "quant", "-p", "2", "-t", str(work / "transcripts.fa"),
                             "-l", "A", "-a", str(work / "aln.bam"), "-o", str(work / "salmon")],
                            work / "salmon.log")
    theirs = pd.read_csv(work / "salmon" / "quant.sf", sep="\t").set_index("Name")
    results.append({"tool": "salmon quant -a (-p 2)", "seconds": round(seconds, 1), "peak MB": round(mb),
                    **accuracy(theirs.loc[names, "NumReads"].to_numpy(), truth, absent)})
    seconds, mb = run_timed(["rsem-calculate-expression", "-p", "2", "--paired-end", "--alignments",
                             "--no-bam-output", str(work / "aln.bam"), str(work / "ref"),
                             str(work / "rsem")], work / "rsem.log")
    rsem = pd.read_csv(work / "rsem.isoforms.results", sep="\t").set_index("transcript_id")
    results.append({"tool": "RSEM (-p 2)", "seconds": round(seconds, 1), "peak MB": round(mb),
                    **accuracy(rsem.loc[names, "expected_count"].to_numpy(), truth, absent)})
    print(pd.DataFrame(results).to_string(index=False))


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
