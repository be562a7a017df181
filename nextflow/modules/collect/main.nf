// Check every party's status record and write the run's summary
// (docs/outputs.md: summary.json beside the results it names).
process COLLECT {
    tag "${meta.id}"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    container 'localhost/syqure-wf:0.1.0'

    input:
    tuple val(meta), path(config)   // the resolved run configuration (from PREPARE)
    path results                    // every party's result here, staged beside the summary

    output:
    tuple val(meta), path('summary.json'), emit: summary
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    syqure-wf collect --config ${config} --out summary.json ${args}
    syqure-wf versions --process "${task.process}" > versions.yml
    """

    stub:
    // a summary of the real shape (format 1), every party here done
    def parties = (results instanceof List ? results : [results]).collect { r ->
        def pid = (r.name =~ /party-(\d+)\.json/)[0][1]
        "{\"pid\": ${pid}, \"state\": \"done\", \"site\": null, \"result\": \"${r.name}\"}"
    }.sort().join(', ')
    """
    echo '{"format": 1, "how": "parties", "run_id": "stub-run", "program": null, "parties": [${parties}]}' > summary.json
    printf '"${task.process}":\\n    syqure-wf: "stub"\\n' > versions.yml
    """
}
