#!/usr/bin/env nextflow
// syqure-wf's named workflow SYQURE: prepare one run, build a Sequre program
// once, run the parties here at once, collect the summary. The pipeline that
// `nextflow run` starts is main.nf at the repository's root (docs/pipelines.md);
// a host pipeline includes this one:
//   include { SYQURE } from './nextflow/main'             (tests/host-nextflow/)
//   include { SUBMIT } from './nextflow/modules/submit/main'
nextflow.enable.dsl = 2

include { PREPARE } from './modules/prepare/main'
include { BUILD   } from './modules/build/main'
include { PARTY   } from './modules/party/main'
include { COLLECT } from './modules/collect/main'

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

// connect + start + run + drain seconds of the resolved run.yaml, plus 10
// minutes, as a Nextflow duration; '' where the run sets no bound (run: 0)
// (a channel carries no null)
def timeLimit(yaml) {
    def t = (new groovy.yaml.YamlSlurper().parse(yaml.toFile()) ?: [:]).timeouts ?: [:]
    if (!(t.run ?: 0)) {
        return ''
    }
    def seconds = ['connect', 'start', 'run', 'drain'].sum { (t[it] ?: 0) as double } + 600
    return "${Math.ceil(seconds) as long} s"
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
    // each party's time limit (label process_mpc): the run's own bound, from its resolved timeouts
    def limit = PREPARE.out.config.map { m, yaml -> timeLimit(yaml) }
    PARTY(parties.combine(limit).map { m, data, time_limit -> [m + [time_limit: time_limit], data] },
          config, BUILD.out.binary.map { m, program -> program }.ifEmpty([]))
    COLLECT(PREPARE.out.config, PARTY.out.result.map { m, result -> result }.collect())
    versions = PREPARE.out.versions.mix(BUILD.out.versions, PARTY.out.versions, COLLECT.out.versions)

    emit:
    results  = PARTY.out.result      // [ meta, result file ] for each party
    summary  = COLLECT.out.summary   // [ meta, summary.json ]
    versions = versions              // versions.yml of every task
}
