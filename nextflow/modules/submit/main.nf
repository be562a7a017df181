// Across organisations: submit the run to every site's agent over SyftBox
// and wait; each site runs its own party once all are ready. Outputs what
// each site shared and, beside it, the summary naming every site's state
// (docs/outputs.md). Fails, naming the site and its reason, on a rejection,
// a failure or the expiry.
process SUBMIT {
    tag "${meta.id}"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container 'localhost/syqure-wf:0.1.0'

    input:
    // meta: id (the run's name), to (the parties' emails in pid order, comma-
    // separated; '' for those of the configuration), syftbox_folder and email
    // (this site's), expires (seconds for every site to be ready), timeout
    // (seconds to wait for the run, 0: until it ends)
    tuple val(meta), path(config)   // a run configuration whose inputs are names (each site maps them)

    output:
    tuple val(meta), path('party-*.json'), emit: results, optional: true
    tuple val(meta), path('summary.json'), emit: summary
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def site = "--syftbox-folder ${meta.syftbox_folder} --email ${meta.email}"
    def to = meta.to ? "--to ${meta.to}" : ''
    def expires = meta.expires != null ? "--expires ${meta.expires}" : ''
    def timeout = meta.timeout != null ? "--timeout ${meta.timeout}" : ''
    """
    run_id=\$(syqure-wf submit --config ${config} ${to} ${site} ${expires} ${args} | tail -n 1)
    syqure-wf wait "\$run_id" ${site} ${timeout} --results collected
    for result in collected/"\$run_id"/party-*.json; do
        if [ -e "\$result" ]; then cp "\$result" .; fi
    done
    cp collected/"\$run_id"/summary.json summary.json
    syqure-wf versions --process "${task.process}" > versions.yml
    """

    stub:
    """
    echo '{"format": 1, "how": "submit", "run_id": "stub-run", "program": null, "parties": [{"pid": 0, "state": "done", "site": "${meta.email}", "result": null}]}' > summary.json
    printf '"${task.process}":\\n    syqure-wf: "stub"\\n' > versions.yml
    """
}
