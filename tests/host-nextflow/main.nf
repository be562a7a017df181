#!/usr/bin/env nextflow
// A host pipeline with syqure-wf as one step: each site makes its counts
// (upstream), SYQURE aggregates them under MPC, a last process reports on
// the result (downstream). Run from a folder that holds this file, its
// nextflow.config and syqure-wf's nextflow/ folder:
//   nextflow run main.nf --config mpc.yaml -with-report report.html -with-trace
nextflow.enable.dsl = 2

include { SYQURE } from './nextflow/main'

process SITE_COUNTS {
    tag "site ${meta.pid}"
    label 'process_single'

    input:
    val meta   // id, pid: the party whose private input this is

    output:
    tuple val(meta), path("site${meta.pid}.json")

    script:
    """
    python3 ${params.make_data} --variants 300 --seed 11 --out made
    mv made/site${meta.pid}.json .
    """
}

process REPORT {
    label 'process_single'
    publishDir params.outdir, mode: 'copy'

    input:
    tuple val(meta), path(result)   // the aggregate, as party 0 got it
    tuple val(run), path(summary)   // the run's summary: every party done

    output:
    path 'report.txt'

    script:
    """
    #!/usr/bin/env python3
    import json
    result = json.load(open("${result}"))
    summary = json.load(open("${summary}"))
    with open("report.txt", "w") as out:
        print("variants", len(result["variants"]), file=out)
        print("total_allele_count", sum(result["allele_count"]), file=out)
        print("parties_done", sum(p["state"] == "done" for p in summary["parties"]), file=out)
    """
}

workflow {
    sites = SITE_COUNTS(Channel.of(1, 2).map { pid -> [id: "party-${pid}", pid: pid] })
    parties = Channel.of([[id: 'party-0', pid: 0], []]).mix(sites)
    SYQURE([id: 'host', config: params.config, run_dir: "${launchDir}/runs/host", run_id: '',
            parties_here: 3, per_host: 3], parties)
    REPORT(SYQURE.out.results.filter { meta, result -> meta.pid == 0 }, SYQURE.out.summary)
}
