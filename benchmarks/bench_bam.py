"""Alignment likelihoods from BAM: time and memory per million alignments; skem vs salmon -a vs RSEM.

Run on demand (not part of the tests)::

    python benchmarks/bench_bam.py [--fragments 200000] [--genes 300] [--seed 0] [--work DIR]
                                   [--ends {paired,single}] [--repeat 3] [--no-rsem]
                                   [--no-tools] [--tools-bam {bowtie2,pysam}] [--reuse]

``--ends single`` keeps read 1 of each fragment only: single-end reads (the
position term then sums over the fragment lengths that fit), aligned by
bowtie2 with ``-U`` and given to RSEM without ``--paired-end``.

1. A transcriptome from the simulator's exon structure (``make_transcript_reads``:
   isoforms share exons, gene 1 is a paralog of gene 0) with random exon
   sequences, and a second copy of every 10th transcript 0.5 % divergent
   (decoys for 0/1 compatibility). Paired-end fragments (normal length 250,
   sd 25, 2 x 100 bases, 1 % substitutions) drawn from known abundances, all
   at once with numpy (10^6 fragments in about 5 s).
2. A BAM of those reads written as SAM text and converted by pysam: the true
   proper pairs plus secondary pairs on the divergent copies, AS = -6 per
   mismatch under a bowtie2 @PG line (no aligner needed). Time and traced
   peak memory (bytes per record) of ``read_alignments``, against a plain
   pysam pass over the same file (reading only the flag) and one reading the
   same fields as ``read_alignments`` (name, flag, reference, start, end,
   mate start, AS) and keeping nothing.
3. If bowtie2, salmon and RSEM are installed: the reads aligned by bowtie2
   with RSEM's settings (``-k 200``; 10^6 pairs take about 5 minutes on two
   cores; ``--reuse`` keeps the BAM of an earlier run in ``--work``), or
   part 2's BAM (``--tools-bam pysam``); then on that one BAM ``skem quant
   --alignments`` (score scale from the @PG line), ``salmon quant -a -p 2``
   and ``rsem-calculate-expression -p 2 --alignments``: Spearman of counts
   with the truth, mean relative error for true count >= 10, truly absent
   transcripts given > 1 read, wall time and peak memory (largest resident
   set in the process tree, from ``/usr/bin/time -v``), as ratios to
   salmon's time and RSEM's memory.
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

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
COMPLEMENT = np.zeros(256, dtype=np.uint8)
COMPLEMENT[BASES] = np.frombuffer(b"TGCA", dtype=np.uint8)
READ = 100
#: Mean and sd of the simulated fragment lengths.
FRAGMENT = (250, 25)
#: bowtie2's default largest mismatch penalty: the pysam BAM's AS is -6 per mismatch.
MISMATCH_PENALTY = 6


def transcriptome(n_genes, rng, seed):
    """Names and sequences (uint8 arrays): the simulator's isoforms, plus 0.5 %-divergent copies."""
    _, _, truth = make_transcript_reads(1000, n_genes=n_genes, fragment_length=READ, random_state=seed)
    exon_ids = sorted({e for t in truth.exons for e in t})
    # the simulator returns exon ids, not their lengths: draw lengths and sequences per exon id
    exon_seq = {e: rng.choice(BASES, int(rng.integers(80, 401))) for e in exon_ids}
    names = [str(name) for name in truth.transcript_names]
    seqs = [np.concatenate([exon_seq[e] for e in exons]) for exons in truth.exons]
    # divergent copies of every 10th transcript: 0.5 % substitutions (always another base)
    for k in range(0, len(names), 10):
        seq = seqs[k].copy()
        where = rng.random(seq.size) < 0.005
        codes = np.searchsorted(BASES, seq[where])
        seq[where] = BASES[(codes + rng.integers(1, 4, where.sum())) % 4]
        names.append(f"{names[k]}.copy")
        seqs.append(seq)
    return names, seqs


def simulate(seqs, n_fragments, rng):
    """Fragments ``(transcript, start, length)`` as arrays, drawn from known abundances, and the truth."""
    M = len(seqs)
    L = np.array([s.size for s in seqs])
    tau = rng.lognormal(0, 1.5, M)
    tau[rng.random(M) < 0.15] = 0.0
    tau[L < 2 * READ] = 0.0  # no fragment of two reads fits
    eff = np.maximum(L - FRAGMENT[0] + 1, 1)
    nu = tau * eff / np.sum(tau * eff)
    counts = rng.multinomial(n_fragments, nu)
    transcript = rng.permutation(np.repeat(np.arange(M), counts))
    length = np.zeros(transcript.size, dtype=np.int64)
    redraw = np.arange(transcript.size)
    while redraw.size:  # lengths outside [2 reads, L] are drawn again
        length[redraw] = np.round(rng.normal(*FRAGMENT, redraw.size))
        fits = (length[redraw] >= 2 * READ) & (length[redraw] <= L[transcript[redraw]])
        redraw = redraw[~fits]
    start = (rng.random(transcript.size) * (L[transcript] - length + 1)).astype(np.int64)
    return transcript, start, length, counts.astype(float)


def reads(seqs, transcript, start, length, rng, rate=0.01):
    """Both mates as uint8 arrays (n, READ) on the forward strand, with substitutions at ``rate``.

    Read 1 starts at the fragment's start, read 2 ends at its end (as sequenced,
    read 2 is the reverse complement of its row here).
    """
    offsets = np.r_[0, np.cumsum([s.size for s in seqs])]
    genome = np.concatenate(seqs)
    mates = []
    for first in (start, start + length - READ):
        mate = genome[(offsets[transcript] + first)[:, None] + np.arange(READ)]
        where = rng.random(mate.shape) < rate
        mate[where] = rng.choice(BASES, where.sum())
        mates.append(mate)
    return mates


def write_fastq(work, one, two, paired=True):
    """r1.fq and (paired) r2.fq (read 2 as sequenced: the reverse complement)."""
    quality = b"I" * READ
    mates = ((work / "r1.fq", one), (work / "r2.fq", COMPLEMENT[two[:, ::-1]]))
    for path, mate in mates if paired else mates[:1]:
        with open(path, "wb") as out:
            for begin in range(0, mate.shape[0], 100_000):
                block = mate[begin : begin + 100_000]
                out.write(b"".join(
                    b"@f%d\n%s\n+\n%s\n" % (begin + i, row.tobytes(), quality)
                    for i, row in enumerate(block)))


def pysam_bam(path, names, seqs, transcript, start, length, one, two, paired=True):
    """The true proper pairs plus secondary pairs on the divergent copies, as bowtie2 would score them.

    With ``paired=False``, read 1 of each fragment alone (single-end reads).

    AS = -6 per mismatch of the mate with the transcript (bowtie2's default
    ``--mp 6,2`` at high quality, named in the @PG line), NM the mismatches.
    SAM text is written block by block and converted to BAM by pysam.
    """
    import pysam

    index = {n: i for i, n in enumerate(names)}
    copy_of = np.array([index.get(f"{n}.copy", -1) for n in names])
    offsets = np.r_[0, np.cumsum([s.size for s in seqs])]
    genome = np.concatenate(seqs)
    n = transcript.size
    # alignments: every fragment on its transcript, and on the copy where there is one
    has_copy = np.flatnonzero(copy_of[transcript] >= 0)
    fragment = np.r_[np.arange(n), has_copy]
    target = np.r_[transcript, copy_of[transcript[has_copy]]]
    secondary = np.r_[np.zeros(n, bool), np.ones(has_copy.size, bool)]
    order = np.argsort(fragment, kind="stable")
    fragment, target, secondary = fragment[order], target[order], secondary[order]
    left, right = start[fragment], (start + length - READ)[fragment]
    quality = "I" * READ
    header = "@HD\tVN:1.6\tSO:unsorted\n" + "".join(
        f"@SQ\tSN:{name}\tLN:{seq.size}\n" for name, seq in zip(names, seqs)
    ) + "@PG\tID:bowtie2\tPN:bowtie2\tVN:2.5.1\tCL:\"bowtie2-align-s --wrapper basic-0 -k 200 -x ref\"\n"
    sam = Path(str(path) + ".sam")
    with open(sam, "w") as out:
        out.write(header)
        for begin in range(0, fragment.size, 100_000):
            block = slice(begin, begin + 100_000)
            lines = []
            mate_rows = []
            for mate, at in ((one, left[block]), (two, right[block])):
                reference = genome[(offsets[target[block]] + at)[:, None] + np.arange(READ)]
                read = mate[fragment[block]]
                mate_rows.append(((read != reference).sum(axis=1), read))
            (nm1, seq1), (nm2, seq2) = mate_rows
            for i in range(fragment[block].size):
                j = begin + i
                name, ref, flag2nd = f"f{fragment[j]}", names[target[j]], 0x100 if secondary[j] else 0
                f = length[fragment[j]]
                if not paired:  # read 1 alone, forward at the fragment's start
                    lines.append(f"{name}\t{flag2nd}\t{ref}\t{left[j] + 1}\t255\t{READ}M\t*\t0\t0"
                                 f"\t{seq1[i].tobytes().decode()}\t{quality}"
                                 f"\tAS:i:{-MISMATCH_PENALTY * nm1[i]}\tNM:i:{nm1[i]}\n")
                    continue
                # read 1 forward at the left end (flags 0x63), read 2 reverse at the right (0x93)
                for flag, at, mate_at, tlen, seq, nm in ((0x63, left[j], right[j], f, seq1[i], nm1[i]),
                                                         (0x93, right[j], left[j], -f, seq2[i], nm2[i])):
                    lines.append(f"{name}\t{flag | flag2nd}\t{ref}\t{at + 1}\t255\t{READ}M\t=\t{mate_at + 1}"
                                 f"\t{tlen}\t{seq.tobytes().decode()}\t{quality}"
                                 f"\tAS:i:{-MISMATCH_PENALTY * nm}\tNM:i:{nm}\n")
            out.write("".join(lines))
    pysam.view("-b", "-o", str(path), str(sam), catch_stdout=False)
    sam.unlink()
    return (2 if paired else 1) * fragment.size


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
    parser.add_argument("--tools-bam", choices=["bowtie2", "pysam"], default="bowtie2",
                        help="the BAM the tools share: bowtie2's with RSEM's settings, or part 2's")
    parser.add_argument("--reuse", action="store_true",
                        help="keep a bowtie2 BAM and RSEM reference already in --work (same arguments)")
    parser.add_argument("--ends", choices=["paired", "single"], default="paired",
                        help="paired-end fragments, or read 1 of each alone (single-end)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of skem and salmon (interleaved; the best time is kept)")
    parser.add_argument("--no-rsem", action="store_true", help="leave RSEM out of part 3")
    parser.add_argument("--no-passes", action="store_true",
                        help="skip part 2 (its pysam BAM is still written for --tools-bam pysam)")
    args = parser.parse_args(argv)
    paired = args.ends == "paired"
    rng = np.random.default_rng(args.seed)
    work = Path(args.work)
    work.mkdir(exist_ok=True)

    start = time.perf_counter()
    names, seqs = transcriptome(args.genes, rng, args.seed)
    transcript, begin, length, truth = simulate(seqs, args.fragments, rng)
    one, two = reads(seqs, transcript, begin, length, rng)
    absent = truth == 0
    print(f"{len(names)} transcripts, {transcript.size} fragments, {absent.sum()} transcripts without any "
          f"(simulated in {time.perf_counter() - start:.1f} s)")

    # ---- 2. a BAM from pysam: cost per million alignments
    start = time.perf_counter()
    if args.no_passes and args.tools_bam == "bowtie2":
        n_records = 0
    else:
        n_records = pysam_bam(work / "sim.bam", names, seqs, transcript, begin, length, one, two, paired)
        print(f"pysam BAM written in {time.perf_counter() - start:.1f} s")
    if not args.no_passes:
        passes(work / "sim.bam", n_records, truth, absent)
    if args.no_tools:
        return
    tools(args, work, names, seqs, one, two, truth, absent, paired)


def passes(path, n_records, truth, absent):
    """Part 2: read_alignments against plain pysam passes over the same file, and the fit."""
    millions = n_records / 1e6
    # best of 3 runs of each, interleaved: the machine's load varies more than the passes do
    t_plain = t_fields = t_read = np.inf
    for _ in range(3):
        t_plain = min(t_plain, timed(plain_pass, path)[0])
        t_fields = min(t_fields, timed(fields_pass, path)[0])
        seconds, aln = timed(read_alignments, path)
        t_read = min(t_read, seconds)
    peak = traced_peak(read_alignments, path)  # separately: tracing slows Python down
    print(f"\npysam BAM: {n_records} records; per 10^6 records: plain pysam pass (flag only) "
          f"{t_plain / millions:.2f} s, pysam pass reading the same fields {t_fields / millions:.2f} s, "
          f"read_alignments {t_read / millions:.2f} s ({t_read / t_plain:.1f} x the flag-only pass, "
          f"{t_read / t_fields:.1f} x the same-fields pass); traced peak {peak / n_records:.0f} bytes "
          f"per record ({peak / 2**20:.0f} MB); {aln.X.shape[0]} classes")
    start = time.perf_counter()
    fit = TranscriptQuantifier(x_includes_length=True, effective_lengths=aln.effective_lengths,
                               lengths=aln.transcript_lengths).fit(aln.X, sample_weight=aln.counts)
    print(f"fit: {time.perf_counter() - start:.2f} s, {fit.n_iter_} iterations; "
          f"{accuracy(fit.est_counts_, truth, absent)}")


def tools(args, work, names, seqs, one, two, truth, absent, paired):
    """Part 3: skem quant --alignments, salmon quant -a and RSEM on one BAM."""
    needed = ("bowtie2", "salmon") + (() if args.no_rsem else ("rsem-calculate-expression",))
    if not all(shutil.which(t) for t in needed):
        print("\nbowtie2, salmon or RSEM missing: no comparison with the field's tools.")
        return
    # ---- 3. the field's tools on one BAM
    with open(work / "transcripts.fa", "wb") as fa:
        for name, seq in zip(names, seqs):
            fa.write(b">%s\n%s\n" % (name.encode(), seq.tobytes()))
    if not (args.reuse and (work / "ref.grp").exists()):
        subprocess.run(["rsem-prepare-reference", "--bowtie2", str(work / "transcripts.fa"),
                        str(work / "ref")], check=True, capture_output=True)
    if args.tools_bam == "pysam":
        bam = work / "sim.bam"
    else:
        bam = work / "aln.bam"
        if not (args.reuse and bam.exists()):
            write_fastq(work, one, two, paired)
            start = time.perf_counter()
            bowtie = ["bowtie2", "-p", "2", "--sensitive", "--dpad", "0", "--gbar", "99999999",
                      "--mp", "1,1", "--np", "1", "--score-min", "L,0,-0.1", "-k", "200",
                      "-x", str(work / "ref")]
            bowtie += (["-I", "1", "-X", "1000", "--no-mixed", "--no-discordant",
                        "-1", str(work / "r1.fq"), "-2", str(work / "r2.fq")] if paired
                       else ["-U", str(work / "r1.fq")])
            with subprocess.Popen(bowtie, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as aligner:
                subprocess.run(["samtools", "view", "-b", "-o", str(bam), "-"], stdin=aligner.stdout,
                               check=True)
            print(f"bowtie2 -k 200 (RSEM's settings): {time.perf_counter() - start:.0f} s")
    n_aln = int(subprocess.run(["samtools", "view", "-c", str(bam)], capture_output=True, text=True).stdout)
    print(f"\n{args.tools_bam} BAM: {n_aln} records")
    skem_cli = [sys.executable, "-c", "import sys; from skem.cli import main; sys.exit(main())"]
    commands = {
        # score scale chosen from the @PG line (bowtie2's --mp)
        "skem quant --alignments": [*skem_cli, "quant", "--alignments", str(bam), "-o", str(work / "skem")],
        "salmon quant -a (-p 2)": ["salmon", "quant", "-p", "2", "-t", str(work / "transcripts.fa"),
                                   "-l", "A", "-a", str(bam), "-o", str(work / "salmon")],
    }
    best = {tool: (np.inf, 0.0) for tool in commands}
    for _ in range(args.repeat):  # interleaved: both tools see the same load
        for tool, command in commands.items():
            seconds, mb = run_timed(command, work / f"{tool.split()[0]}.log")
            best[tool] = min(best[tool], (seconds, mb))
    ours = pd.read_csv(work / "skem" / "abundance.tsv", sep="\t").set_index("target_id")
    theirs = pd.read_csv(work / "salmon" / "quant.sf", sep="\t").set_index("Name")
    estimates = {"skem quant --alignments": ours.loc[names, "est_counts"].to_numpy(),
                 "salmon quant -a (-p 2)": theirs.loc[names, "NumReads"].to_numpy()}
    if not args.no_rsem:
        seconds, mb = run_timed(["rsem-calculate-expression", "-p", "2", *(["--paired-end"] if paired else []),
                                 "--alignments", "--no-bam-output", str(bam), str(work / "ref"),
                                 str(work / "rsem")], work / "rsem.log")
        rsem = pd.read_csv(work / "rsem.isoforms.results", sep="\t").set_index("transcript_id")
        best["RSEM (-p 2)"] = (seconds, mb)
        estimates["RSEM (-p 2)"] = rsem.loc[names, "expected_count"].to_numpy()
    results = [{"tool": tool, "seconds": round(seconds, 2), "peak MB": round(mb),
                **accuracy(estimates[tool], truth, absent)} for tool, (seconds, mb) in best.items()]
    table = pd.DataFrame(results)
    table["time / salmon"] = (table["seconds"] / table["seconds"].iloc[1]).round(2)
    if not args.no_rsem:
        table["memory / RSEM"] = (table["peak MB"] / table["peak MB"].iloc[2]).round(2)
    print(f"{args.ends}-end, best of {args.repeat} (skem, salmon; interleaved):")
    print(table.to_string(index=False))


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
