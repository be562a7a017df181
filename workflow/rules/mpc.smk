# The MPC run: prepare the run folder, build a Sequre program once, one job
# per party (its proxy and its program, as `syqure-wf party`), then check
# every party's status record.


rule prepare:
    output:
        config=f"runs/{RUN}/config.yaml",
    params:
        # the run configuration, its paths made absolute, handed over as a file
        mpc=yaml.safe_dump(mpc_config(), sort_keys=False),
        clean="--clean" if config.get("parties_here", "all") == "all" else "",
        per_host=parties_per_host(),
    log:
        f"logs/{RUN}/prepare.log",
    conda:
        ENV
    container:
        CONTAINER
    shell:
        "trap 'rm -f {output.config}.given' EXIT; printf '%s\\n' {params.mpc:q} > {output.config}.given"
        " && syqure-wf prepare --config {output.config}.given --base-dir . --out {output.config}"
        " {params.clean} --parties-here {params.per_host} 2> {log}"


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
    conda:
        ENV
    container:
        CONTAINER
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
        # its text: the same wherever the workflow's files come from
        cancel_queued=Path(repo_file("workflow/scripts/cancel_queued_jobs.sh")).read_text(),
    threads: 1
    resources:
        slurm_extra=lambda wc: (f"--nodelist={config['placement'][int(wc.pid)]}"
                                if config.get("placement", {}).get(int(wc.pid)) else ""),
    conda:
        ENV
    container:
        CONTAINER
    shell:
        # A failed run is over: its resolved config goes, so that the next
        # attempt prepares a new run (a new run id) instead of reusing this one.
        # On a cluster, the run's parties still queued could only fail later.
        # Its one-line error goes to the log too: Snakemake shows a failed job's log.
        "(syqure-wf party --config {input.config} --pid {wildcards.pid} --output {output.result}"
        "{params.binary}"
        " || {{ code=$?; rm -f {input.config}; bash -c {params.cancel_queued:q}; exit $code; }}) 2>&1 | tee {log}"


rule collect:
    input:
        config=rules.prepare.output.config,
        results=expand(f"results/{RUN}/party-{{pid}}.json", pid=PARTIES_HERE),
    output:
        summary=report(f"results/{RUN}/summary.json", caption="../report/summary.rst", category="syqure-wf"),
    log:
        f"logs/{RUN}/collect.log",
    conda:
        ENV
    container:
        CONTAINER
    shell:
        "syqure-wf collect --config {input.config} --out {output.summary} 2> {log}"
