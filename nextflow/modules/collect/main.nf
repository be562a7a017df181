// Check every party's status record and write the run's summary.
process COLLECT {
    tag "${meta.id}"
    label 'process_single'
    conda "${moduleDir}/environment.yml"

    input:
    tuple val(meta), path(config)   // the resolved run configuration (from PREPARE)
    path results                    // every party's result here: COLLECT runs after them

    output:
    tuple val(meta), path('summary.json'), emit: summary
    path 'versions.yml', emit: versions

    script:
    """
    syqure-wf collect --config ${config} --out summary.json

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        syqure-wf: \$(syqure-wf --version | sed 's/.* //')
    END_VERSIONS
    """

    stub:
    """
    echo '{"parties": []}' > summary.json
    echo '"${task.process}": {syqure-wf: stub}' > versions.yml
    """
}
