# The MPC run: prepare the run folder, build a Sequre program once, one job
# per party (its proxy and its program, as `syqure-wf party`), then check
# every party's status record.


rule prepare:
    output:
        config=f"runs/{RUN}/config.yaml",
    params:
        mpc=mpc_config(),
        clean=config.get("parties_here", "all") == "all",
        per_host=parties_per_host(),
    log:
        f"logs/{RUN}/prepare.log",
    run:
        from syqure_wf.run.steps import prepare

        prepare(params.mpc, output.config, clean_leftovers=params.clean, parties_here=params.per_host)


rule build:
    input:
        config=rules.prepare.output.config,
    output:
        binary=BINARY,
    log:
        f"runs/{RUN}/logs/build.log",
    threads: 1
    resources:
        mem_mb=2000,  # Codon takes about 0.9 GB to compile a Sequre program
    shell:
        "syqure-wf build --config {input.config} --out {output.binary} 2> {log}"


rule party:
    input:
        unpack(party_input),
        config=rules.prepare.output.config,
    output:
        result=f"results/{RUN}/party-{{pid}}.json",
    log:
        f"runs/{RUN}/logs/party-{{pid}}.runner.log",  # the program's own: party-{pid}.log
    wildcard_constraints:
        pid=r"\d+",
    params:
        binary=lambda wc, input: f" --binary {input.binary}" if "binary" in input.keys() else "",
        cancel_queued=REPO / "workflow" / "scripts" / "cancel_queued_jobs.sh",
    threads: 1
    resources:
        slurm_extra=lambda wc: (f"--nodelist={config['placement'][int(wc.pid)]}"
                                if config.get("placement", {}).get(int(wc.pid)) else ""),
    shell:
        # A failed run is over: its resolved config goes, so that the next
        # attempt prepares a new run (a new run id) instead of reusing this one.
        # On a cluster, the run's parties still queued could only fail later.
        # Its one-line error goes to the log too: Snakemake shows a failed job's log.
        "(syqure-wf party --config {input.config} --pid {wildcards.pid} --output {output.result}"
        "{params.binary}"
        " || {{ code=$?; rm -f {input.config}; bash {params.cancel_queued}; exit $code; }}) 2>&1 | tee {log}"


rule collect:
    input:
        config=rules.prepare.output.config,
        results=expand(f"results/{RUN}/party-{{pid}}.json", pid=PARTIES_HERE),
    output:
        summary=f"results/{RUN}/summary.json",
    shell:
        "syqure-wf collect --config {input.config} --out {output.summary}"
