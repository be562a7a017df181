#!/usr/bin/env nextflow
// syqure-wf: one multi-party computation as a Nextflow pipeline (Nextflow
// 24.10, Java 17; README.md, "Nextflow"). The commands tests/test_nextflow.py
// runs, from the repository root:
//   nextflow run nextflow/main.nf -profile local            (every party here: results/allele-counts/)
//   nextflow run nextflow/main.nf -profile local -resume    (nothing runs again)
//   nextflow run nextflow/main.nf -profile local -stub-run
//   nextflow run nextflow/main.nf -profile local --config examples/allele-counts/config-sequre.yaml --run allele-counts-sequre
//   nextflow run nextflow/main.nf -profile syftbox --pid 1 --run_id RUN --config run.yaml   (at each site)
//   nextflow run nextflow/main.nf -profile slurm -params-file placement.json --partition compute
//   nextflow run nextflow/main.nf -profile submit --config run.yaml --to a@x,b@y,c@z --syftbox_folder ~/SyftBox --email a@x
// Embedding: include { SYQURE } from './nextflow/main' (tests/host-nextflow/),
// or { SUBMIT } from './nextflow/modules/submit/main'.
nextflow.enable.dsl = 2

include { PREPARE } from './modules/prepare/main'
include { BUILD   } from './modules/build/main'
include { PARTY   } from './modules/party/main'
include { COLLECT } from './modules/collect/main'
include { SUBMIT  } from './modules/submit/main'

// The parties of an MPC run wait for each other: if the executor cannot run
// all of them at once, the first ones wait forever for the last. Refused
// here, while the workflow is built, before any task starts.
def checkAllAtOnce(int parties) {
    def executor = (session.config.navigate('process.executor') ?: 'local') as String
    def cores = Runtime.runtime.availableProcessors()
    def limits = [:]  // what caps the tasks running at once, and how to raise it
    // the local executor runs as many tasks at once as this machine has cores, unless told
    limits['executor.queueSize'] = session.getExecConfigProp(executor, 'queueSize', executor == 'local' ? cores : 0)
    if (executor == 'local') {
        limits['executor.cpus'] = session.getExecConfigProp('local', 'cpus', cores)
        // Nextflow 24.10 waits for each local task on a thread of this pool (-pool-size)
        limits['poolSize (-pool-size)'] = session.poolSize
    }
    limits.each { name, value ->
        if (value as int > 0 && (value as int) < parties) {
            error "syqure-wf: ${parties} parties must run at once here but ${name} is ${value}: " +
                  "give ${name} ${parties} or more (MPC parties cannot queue; the local profile sets them)"
        }
    }
}

workflow SYQURE {
    take:
    // run: a map, known when the workflow is built:
    //   id (the run's name), config (its run configuration file), run_dir (the
    //   folder its parties share), run_id ('' makes one up; give one when the
    //   parties are on several machines), parties_here (how many parties this
    //   pipeline runs: all at once), per_host (how many of them share one host:
    //   a network namespace each where Sequre needs it)
    run
    parties   // channel: [ meta, input file or [] ] for each party run here; meta: id, pid

    main:
    checkAllAtOnce(run.parties_here as int)
    def meta = [id: run.id, run_dir: run.run_dir as String, run_id: run.run_id ?: '', per_host: run.per_host]
    PREPARE(Channel.value([meta, file(run.config, checkIfExists: true)]))
    // A failed run is over: its resolved configuration goes, so that the next
    // attempt, -resume too, prepares a new run (a new run id) instead of
    // starting parties in one whose records say failed (as Snakemake's does)
    PREPARE.out.config.subscribe { m, yaml -> workflow.onComplete { if (!workflow.success) { yaml.delete() } } }
    def config = PREPARE.out.config.map { m, yaml -> yaml }
    BUILD(PREPARE.out.config)
    PARTY(parties, config, BUILD.out.binary.map { m, program -> program }.ifEmpty([]))
    COLLECT(PREPARE.out.config, PARTY.out.result.map { m, result -> result }.collect())
    versions = PREPARE.out.versions.mix(BUILD.out.versions, PARTY.out.versions, COLLECT.out.versions)

    emit:
    results  = PARTY.out.result      // [ meta, result file ] for each party
    summary  = COLLECT.out.summary   // [ meta, summary.json ]
    versions = versions              // versions.yml of every task
}

workflow {
    if (params.submit) {  // the sites' agents run the parties: this site submits and waits
        def meta = [id: params.run, to: params.to ?: '', syftbox_folder: params.syftbox_folder, email: params.email]
        SUBMIT(Channel.value([meta, file(params.config, checkIfExists: true)]))
        SUBMIT.out.summary.subscribe { m, summary -> log.info "syqure-wf: run finished, summary ${summary}" }
    } else {
        if (params.one_party && params.pid == null) {
            error "syqure-wf: this profile runs this machine's party only: give --pid (0..${(params.parties as int) - 1})"
        }
        def pids = params.pid != null ? [params.pid as int] : (0..<(params.parties as int)).toList()
        def run = [id: params.run, config: params.config, run_dir: params.run_dir ?: "${launchDir}/runs/${params.run}",
                   run_id: params.run_id ?: '', parties_here: pids.size(),
                   per_host: params.pid != null || params.placement ? 1 : pids.size()]
        SYQURE(run, Channel.fromList(pids).map { pid -> [[id: "party-${pid}", pid: pid], []] })
        SYQURE.out.summary.subscribe { m, summary -> log.info "syqure-wf: run finished, summary ${summary}" }
        SYQURE.out.versions.unique().collectFile(name: 'versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true)
    }
}
