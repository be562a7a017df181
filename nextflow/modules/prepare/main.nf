// Fix one run: its id, its folders and every default, in run.yaml, the file
// every party reads. Writes only in its work folder: the parties make the run
// folder (meta.run_dir), which they share.
process PREPARE {
    tag "${meta.id}"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container 'localhost/syqure-wf:0.1.0'

    input:
    // meta: id (the run's name), run_dir (the folder the parties share),
    // run_id ('' makes one up), per_host (parties of the run on one host)
    tuple val(meta), path(run_config, stageAs: 'given/*')  // never the name of the output

    output:
    tuple val(meta), path('run.yaml'), emit: config
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def id = meta.run_id ? "--run-id ${meta.run_id}" : ''
    """
    syqure-wf prepare --config ${run_config} --out run.yaml --run-dir ${meta.run_dir} ${id} --parties-here ${meta.per_host} ${args}
    syqure-wf versions --process "${task.process}" > versions.yml
    """

    stub:
    def id = meta.run_id ?: 'stub-run'
    """
    printf 'run_id: ${id}\\nworkdir: ${meta.run_dir}\\nparties: []\\ntimeouts: {run: 0}\\n' > run.yaml
    printf '"${task.process}":\\n    syqure-wf: "stub"\\n' > versions.yml
    """
}
