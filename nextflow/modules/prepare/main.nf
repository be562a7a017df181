// Fix one run: its id, its folders and every default, in a file that every
// party reads. The run folder is outside the work folder: the parties share it.
process PREPARE {
    tag "${run_dir}"
    label 'process_single'

    input:
    path run_config      // a syqure-wf run configuration (YAML)
    val run_dir          // the run folder the parties share (messages, status, logs)
    val run_id           // the same at every machine of a run; '' makes one up
    val per_host         // parties of the run on one host

    output:
    path 'run.yaml', emit: config

    script:
    def id = run_id ? "--run-id ${run_id}" : ''
    """
    syqure-wf prepare --config ${run_config} --out ${run_dir}/config.yaml ${id} --parties-here ${per_host} ${params.clean ? '--clean' : ''}
    cp ${run_dir}/config.yaml run.yaml
    """
}
