#!/usr/bin/env bash
# A party of a failed run, inside a SLURM job: cancel the jobs of this
# Snakemake run that are still waiting in the queue (a party that has not
# started could only fail later, and Snakemake waits for it). Snakemake's
# SLURM executor names every job of one run alike (its run id); only this
# user's pending jobs of that name go. Outside SLURM: nothing.
[ -n "${SLURM_JOB_ID:-}" ] && command -v squeue >/dev/null && command -v scancel >/dev/null || exit 0
name=$(squeue -h -j "$SLURM_JOB_ID" -o %j 2>/dev/null) || exit 0
[ -n "$name" ] || exit 0
scancel --state=PENDING --name="$name" --user="$(id -un)" 2>/dev/null || true
