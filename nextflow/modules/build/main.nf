// Compile the run's Sequre program once, for every party of this machine
// (or, on a cluster, for the nodes that share the work folder). Engines with
// nothing to compile (MPyC, a command) emit no binary.
process BUILD {
    tag "${meta.id}"
    label 'process_single'
    conda "${moduleDir}/environment.yml"

    input:
    tuple val(meta), path(config)   // the resolved run configuration (from PREPARE)

    output:
    tuple val(meta), path('program'), emit: binary, optional: true
    path 'versions.yml', emit: versions

    script:
    """
    syqure-wf build --config ${config} --out program --if-needed

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        syqure-wf: \$(syqure-wf --version | sed 's/.* //')
    END_VERSIONS
    """

    stub:
    """
    echo '"${task.process}": {syqure-wf: stub}' > versions.yml
    """
}
