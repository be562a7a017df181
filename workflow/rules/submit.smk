# Across organisations: this site submits the run to the sites' agents over
# SyftBox and waits; each site runs its own party when all are ready. The
# step's outputs: results/<run>/summary.json naming every site's state, and
# beside it party-<pid>.json for each result a site shared with this one
# (docs/outputs.md); what `wait` collected stays in runs/<run>/submit/.
# docs/operators.md.


rule submit:
    output:
        summary=report(f"results/{RUN}/summary.json", caption="../report/summary.rst", category="syqure-wf"),
        work=directory(f"runs/{RUN}/submit"),
    params:
        # the run as submitted (program path absolute, inputs as names), handed over as a file
        mpc=yaml.safe_dump(submission(), sort_keys=False),
        site=site_flags(),
        to=to_flag(),
        expires=config["submit"].get("expires", 3600),  # seconds for every site to be ready
        timeout=config["submit"].get("timeout", 0),  # seconds to wait for the run (0: until it ends)
    log:
        f"logs/{RUN}/submit.log",
    conda:
        ENV
    container:
        CONTAINER
    shell:
        """
        mkdir -p {output.work}
        printf '%s\\n' {params.mpc:q} > {output.work}/submitted.yaml
        run_id=$(syqure-wf submit --config {output.work}/submitted.yaml {params.to} {params.site} --expires {params.expires} 2> {log} | tail -n 1)
        syqure-wf wait "$run_id" {params.site} --results {output.work}/collected --timeout {params.timeout} >> {log} 2>&1
        for result in {output.work}/collected/"$run_id"/party-*.json; do
            if [ -e "$result" ]; then cp "$result" "$(dirname {output.summary})/"; fi
        done
        cp {output.work}/collected/"$run_id"/summary.json {output.summary}
        """
