#!/usr/bin/env nextflow
// A host pipeline with syqure-wf as one step: each site makes its counts,
// SYQURE aggregates them under MPC, a last process reports on the result.
nextflow.enable.dsl = 2

include { SYQURE } from './nextflow/main'

process SITE_COUNTS {
    label 'process_single'

    input:
    val site

    output:
    tuple val(site), path("site${site}.json")

    script:
    """
    python ${params.make_data} --variants 300 --out . && rm -f site${3 - site}.json
    """
}

process REPORT {
    label 'process_single'

    input:
    tuple val(pid), path(result)

    output:
    path 'report.txt'

    script:
    """
    python -c "import json; r = json.load(open('${result}')); print('total_allele_count', sum(r['allele_count']))" > report.txt
    """
}

workflow {
    sites = SITE_COUNTS(Channel.of(1, 2))
    parties = Channel.of(tuple(0, [])).mix(sites)
    SYQURE(file(params.config), parties, "${launchDir}/runs/host", '', 3)
    REPORT(SYQURE.out.results.filter { pid, result -> pid == 0 })
}
