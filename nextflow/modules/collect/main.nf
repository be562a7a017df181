// Check every party's status record and write the run's summary.
process COLLECT {
    label 'process_single'

    input:
    path config
    path results

    output:
    path 'summary.json', emit: summary

    script:
    """
    syqure-wf collect --config ${config} --out summary.json
    """
}
