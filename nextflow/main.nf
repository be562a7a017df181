#!/usr/bin/env nextflow
// syqure-wf: one multi-party computation as a Nextflow pipeline.
//   nextflow run nextflow/main.nf -profile local
//   nextflow run nextflow/main.nf -profile syftbox --pid 1 --syftbox_folder ~/SyftBox --run_id RUN
//   nextflow run nextflow/main.nf -profile submit --config my-run.yaml --to a@x,b@y,c@z --syftbox_folder ~/SyftBox --email a@x
// Embedding: include { SYQURE } from './nextflow/main'  (or { SUBMIT } from './nextflow/modules/submit/main')
nextflow.enable.dsl = 2

include { PREPARE } from './modules/prepare/main'
include { BUILD   } from './modules/build/main'
include { PARTY   } from './modules/party/main'
include { COLLECT } from './modules/collect/main'
include { SUBMIT  } from './modules/submit/main'

workflow SYQURE {
    take:
    run_config   // path: a syqure-wf run configuration
    parties      // channel: tuple(pid, input file or []) for each party that runs here
    run_dir      // val: the run folder the parties share
    run_id       // val: the run id ('' to make one up; give one when parties are on several machines)
    per_host     // val: how many of the parties share one host (a network namespace each where needed)

    main:
    PREPARE(run_config, run_dir, run_id, per_host)
    BUILD(PREPARE.out.config)
    PARTY(PREPARE.out.config, BUILD.out.binary.ifEmpty([]).first(), parties)
    COLLECT(PREPARE.out.config, PARTY.out.result.map { pid, result -> result }.collect())

    emit:
    results = PARTY.out.result     // tuple(pid, result file)
    summary = COLLECT.out.summary
}

workflow {
    if (params.submit) {  // the sites' agents run the parties: this site submits and waits
        SUBMIT(file(params.config, checkIfExists: true), params.to ?: '', params.syftbox_folder, params.email)
        SUBMIT.out.summary.subscribe { summary -> log.info "syqure-wf: run finished, summary ${summary}" }
    } else {
        def pids = params.pid != null ? [params.pid as int] : (0..<(params.parties as int)).toList()
        def parties = Channel.fromList(pids).map { pid -> tuple(pid, []) }
        def run_dir = params.run_dir ?: "${launchDir}/runs/${params.run}"
        def per_host = params.pid != null || params.placement ? 1 : pids.size()
        SYQURE(file(params.config, checkIfExists: true), parties, run_dir, params.run_id ?: '', per_host)
        SYQURE.out.summary.subscribe { summary -> log.info "syqure-wf: run finished, summary ${summary}" }
    }
}
