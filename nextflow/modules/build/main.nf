// Compile the run's Sequre program once, for every party of this machine
// (or, on a cluster, for the nodes that share the work folder). Engines with
// nothing to compile (MPyC, a command) emit no binary.
process BUILD {
    tag "${meta.id}"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container 'localhost/syqure-wf:0.1.0'

    input:
    tuple val(meta), path(config)   // the resolved run configuration (from PREPARE)

    output:
    tuple val(meta), path('program'), emit: binary, optional: true
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    syqure-wf build --config ${config} --out program --if-needed ${args}
    syqure-wf versions --config ${config} --process "${task.process}" > versions.yml
    """

    stub:
    """
    printf '"${task.process}":\\n    syqure-wf: "stub"\\n' > versions.yml
    """
}
