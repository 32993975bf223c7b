"""Measure the bare model, the seed's loop and the whole pipeline, interleaved."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from clipmatch import conf
from clipmatch.inference.sources import ModelLoadError
from listings.benchmark.environment import bench_environment, child_run
from listings.benchmark.run import ARMS, PRECISIONS, benchmark_run
from listings.benchmark.workload import random_vit_b32_build

ARM_LABELS = {
    "bare_fp32": "bare model, {precision}, batch {batch}",
    "bare_precision": "bare model, {precision}, batch {batch}",
    "seed_loop": "seed-style per-pair loop, {precision}",
    "end_to_end": "end to end, {database} + {broker} broker, {precision}",
}


class Command(BaseCommand):
    help = (
        "Benchmark scoring on synthetic listings with realistic photos: the bare "
        "model at fp32 and at the configured precision (inputs already processed), "
        "the seed's per-pair loop, and the whole pipeline through a real qcluster "
        "on the configured database and broker, interleaved round by round. Prints "
        "listings/s, the ratios, worker peak memory and where the pipeline's time "
        "goes. Runs on a database, media folder and queue of its own, removed after."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--model", help="A model directory or hub id (default: CLIPMATCH_MODEL)."
        )
        which.add_argument(
            "--random",
            choices=["vit-b32"],
            help="A randomly initialised CLIP of this shape, built for the run.",
        )
        parser.add_argument("--listings", type=int, default=32)
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--precision",
            choices=sorted(PRECISIONS),
            help="The second bare arm's precision (default: the engine's).",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=os.cpu_count(),
            help="torch threads of the bare arms and the seed loop.",
        )
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument(
            "--timeout", type=int, default=600, help="Seconds one round may take."
        )
        parser.add_argument(
            "--arms",
            default=",".join(ARMS),
            help="The arms to run, comma-separated (default: all; a ratio needs "
            "both of its arms).",
        )
        parser.add_argument("--json", action="store_true", help="Print one object.")
        parser.add_argument(
            "--profile",
            type=Path,
            help="Also write the cProfile statistics of the in-process scoring run "
            "to this file (python -m pstats FILE).",
        )
        # The run itself, in the environment the first process made for it.
        parser.add_argument("--inside", help=argparse.SUPPRESS)

    def handle(self, *args, **options):
        for name in ("listings", "rounds", "threads", "batch_size", "timeout"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1.")
        arms = options["arms"].split(",")
        unknown = sorted(set(arms) - set(ARMS))
        if unknown:
            raise CommandError(
                f"--arms: unknown {', '.join(unknown)}; choose from {', '.join(ARMS)}."
            )
        options["arms_run"] = tuple(arm for arm in ARMS if arm in arms)
        if options["inside"]:
            return self._inside(options)
        model = options["model"] or conf.get("MODEL")
        if options["model"] and Path(model).expanduser().is_dir():
            model = str(Path(model).expanduser().resolve())
        try:
            bench = bench_environment(model=model, precision=options["precision"])
        except NotImplementedError as exc:
            raise CommandError(str(exc)) from exc
        try:
            if options["random"]:
                self.stderr.write("Building a random ViT-B/32 CLIP...")
                path = random_vit_b32_build(bench.work_dir / "random-vit-b32")
                bench.env["CLIPMATCH_MODEL"] = str(path)
            migrated = child_run(
                ["migrate", "--noinput", "-v", "0"],
                bench.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            if migrated.returncode:
                raise CommandError(
                    "Could not set up the benchmark's database:\n" + migrated.stderr
                )
            run = child_run(
                [
                    "clip_benchmark",
                    f"--inside={bench.work_dir}",
                    *self._passed_on(options),
                ],
                bench.env,
                stdout=subprocess.PIPE,
                text=True,
            )
            if run.returncode:
                raise CommandError("The benchmark failed (its error is above).")
        finally:
            bench.drop()
        result = json.loads(run.stdout)
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
        else:
            self._print(result)

    @staticmethod
    def _passed_on(options) -> list[str]:
        passed = []
        for name in ("listings", "rounds", "seed", "threads", "batch_size", "timeout"):
            passed.append(f"--{name.replace('_', '-')}={options[name]}")
        if options["precision"]:
            passed.append(f"--precision={options['precision']}")
        passed.append(f"--arms={','.join(options['arms_run'])}")
        if options["profile"]:
            passed.append(f"--profile={options['profile'].expanduser().resolve()}")
        return passed

    def _inside(self, options):
        try:
            result = benchmark_run(
                count=options["listings"],
                rounds=options["rounds"],
                seed=options["seed"],
                precision=options["precision"],
                threads=options["threads"],
                batch_size=options["batch_size"],
                timeout=options["timeout"],
                work_dir=Path(options["inside"]),
                profile_dump=options["profile"],
                arms_run=options["arms_run"],
                progress=lambda line: (self.stderr.write(line), sys.stderr.flush()),
            )
        except (ModelLoadError, ImproperlyConfigured, TimeoutError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(result))

    def _print(self, result):
        workload, arms = result["workload"], result["arms"]
        settings, model = result["settings"], result["model"]
        machine = result["machine"]
        self.stdout.write(
            f"{model['name']} ({model['parameters']:,} parameters); "
            f"{workload['listings']} listings, {workload['photos_per_listing']} photos "
            f"and {workload['text_windows_per_listing']} text windows each; "
            f"{result['rounds']} rounds interleaved; load average "
            f"{machine['load_before'][0]} before, {machine['load_after'][0]} after "
            f"({machine['cpus']} CPUs)"
        )
        for arm, figures in arms.items():
            label = ARM_LABELS[arm].format(
                precision=figures["precision"],
                batch=figures.get("batch_size"),
                database=settings["database"],
                broker=settings["broker"],
            )
            rounds = " ".join(f"{x:.2f}" for x in figures["listings_per_s"])
            ratio = figures["vs_bare_fp32"]
            self.stdout.write(
                f"  {label:<48} {figures['median_listings_per_s']:7.2f} listings/s  "
                f"{f'{ratio:5.2f}x' if ratio else '    -'}  (rounds: {rounds})"
            )
        if "end_to_end" not in arms:
            return
        ratios = result["ratios"]
        self.stdout.write(
            f"end to end ({settings['workers']} workers x "
            f"{settings['worker_torch_threads']} thread, batch "
            f"{settings['worker_batch_size']}): "
            f"{ratios['e2e_vs_bare_same_precision']}x the bare model at the same "
            f"precision, {ratios['e2e_vs_seed_loop']}x the seed loop, "
            f"{ratios['e2e_vs_bare_fp32']}x the bare fp32 model"
        )
        memory = arms["end_to_end"]["peak_memory_mb"]
        self.stdout.write(
            f"worker peak memory (VmHWM): {memory['max']} MB; the cluster's "
            f"processes: {', '.join(str(mb) for mb in memory['processes'])} MB"
        )
        split = result["e2e_split"]
        parts = ", ".join(
            f"{name.replace('_', ' ')} {ms:.0f} ms ({split['shares'][name]:.0%})"
            for name, ms in split["ms_per_listing"].items()
        )
        self.stdout.write(
            f"a listing's {split['worker_ms_per_listing']:.0f} ms of worker time: "
            f"{parts}"
        )
        self.stdout.write(f"  ({split['method']})")
        for note in result["notes"]:
            self.stdout.write(f"note: {note}")
