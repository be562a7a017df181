// Across organisations: submit the run to every site's agent over SyftBox
// and wait; each site runs its own party once all are ready. Outputs what
// each site shared and a summary naming every site's state. Fails, naming
// the site and its reason, on a rejection, a failure or the expiry.
process SUBMIT {
    tag "${meta.id}"
    label 'process_single'
    conda "${moduleDir}/environment.yml"

    input:
    // meta: id (the run's name), to (the parties' emails in pid order, comma-
    // separated), syftbox_folder and email (this site's)
    tuple val(meta), path(config)   // a run configuration whose inputs are names (each site maps them)

    output:
    tuple val(meta), path('results/party-*.json'), emit: results, optional: true
    tuple val(meta), path('summary.json'), emit: summary
    path 'versions.yml', emit: versions

    script:
    def site = "--syftbox-folder ${meta.syftbox_folder} --email ${meta.email}"
    """
    run_id=\$(syqure-wf submit --config ${config} --to ${meta.to} ${site} | tail -n 1)
    syqure-wf wait "\$run_id" ${site} --results collected
    mkdir -p results
    cp collected/"\$run_id"/party-*.json results/ 2>/dev/null || true
    cp collected/"\$run_id"/sites.json summary.json

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        syqure-wf: \$(syqure-wf --version | sed 's/.* //')
    END_VERSIONS
    """

    stub:
    """
    echo '{"sites": {}}' > summary.json
    echo '"${task.process}": {syqure-wf: stub}' > versions.yml
    """
}
