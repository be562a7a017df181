#!/usr/bin/env nextflow
// syqure-wf: one multi-party computation as a Nextflow pipeline (Nextflow
// 24.10, Java 17; docs/pipelines.md). From a clone, or pinned to a release:
//   nextflow run . -profile local                 (every party here: results/allele-counts/)
//   nextflow run OWNER/syqure-wf -r v0.1.0 -profile local
//   nextflow run . --help                         (every parameter; runs nothing)
//   nextflow run . -profile local -resume         (nothing runs again)
//   nextflow run . -profile local -stub-run
//   nextflow run . -profile local --run_config examples/allele-counts/config-sequre.yaml --run allele-counts-sequre
//   nextflow run . -profile syftbox --pid 1 --run_id RUN --run_config run.yaml   (at each site)
//   nextflow run . -profile slurm -params-file placement.json --partition compute
//   nextflow run . -profile submit --run_config run.yaml --to a@x,b@y,c@z --syftbox_folder ~/SyftBox --email a@x
//   nextflow run . -profile local,podman          (every process in the image)
// Embedding: include { SYQURE } from './nextflow/main' (tests/host-nextflow/),
// or { SUBMIT } from './nextflow/modules/submit/main'.
nextflow.enable.dsl = 2

include { SYQURE } from './nextflow/main'
include { SUBMIT } from './nextflow/modules/submit/main'

// The parameters nextflow_schema.json declares, by name
def declared() {
    def schema = new groovy.json.JsonSlurper().parse(file("${projectDir}/nextflow_schema.json").toFile())
    def found = [:]
    (schema['$defs'] ?: schema.definitions ?: [:]).each { group, body ->
        body.properties.each { name, spec -> found[name] = spec + [group: body.title ?: group] }
    }
    return found
}

// --help: every parameter, by group, then exit before any task
def helpText(Map params_) {
    def lines = ['', "syqure-wf ${workflow.manifest.version}: one multi-party computation", '',
                 'Usage: nextflow run <this pipeline> -profile local|syftbox|submit|slurm[,podman|docker] [--param value ...]', '']
    declared().groupBy { name, spec -> spec.group }.each { group, entries ->
        if (entries.every { name, spec -> spec.hidden }) {
            return
        }
        lines << "${group}:"
        entries.findAll { name, spec -> !spec.hidden }.each { name, spec ->
            def value = params_[name] instanceof Map ? (params_[name] ? params_[name] : '') : (params_[name] ?: (spec.default ?: ''))
            lines << "  --${name.padRight(16)} ${spec.description}${value != '' ? " [${value}]" : ''}"
        }
        lines << ''
    }
    lines << 'Reports (report, timeline, trace) go to <outdir>/pipeline_info/; docs/pipelines.md, docs/outputs.md.'
    return lines.join('\n')
}

// Levenshtein distance: for "did you mean"
def distance(String a, String b) {
    def row = (0..b.length()).toList()
    for (int i = 1; i <= a.length(); i++) {
        def next = [i]
        for (int j = 1; j <= b.length(); j++) {
            next << [row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)].min()
        }
        row = next
    }
    return row[b.length()]
}

// A parameter the schema does not declare is refused, naming the closest one;
// Nextflow's own -options are not params. camelCase copies Nextflow makes of
// kebab-case names count as the name given.
def checkParams(Map params_) {
    if (params_.containsKey('config')) {  // not a parameter of this pipeline: Nextflow's -config is one dash
        error "syqure-wf: --config is not a parameter: the run configuration is --run_config (Nextflow's own -c/-config takes a Nextflow config)"
    }
    def known = declared().keySet()
    def given = params_.keySet().findAll { !(it in known) && !(it.replaceAll(/([A-Z])/, '_$1').toLowerCase() in known) }
    // Nextflow adds a camelCase twin of each snake_case name: those are known too
    given = given.findAll { g -> !known.any { k -> k.replaceAll(/_([a-z])/) { m -> m[1].toUpperCase() } == g } }
    if (given) {
        def name = given.sort()[0]
        def closest = known.min { distance(name, it) }
        error "syqure-wf: unknown parameter --${name}: did you mean --${closest}? (nextflow run <this pipeline> --help lists them)"
    }
}

workflow {
    if (params.help) {
        log.info helpText(params)
        return
    }
    checkParams(params)
    if (params.submit) {  // the sites' agents run the parties: this site submits and waits
        def meta = [id: params.run, to: params.to ?: '', syftbox_folder: params.syftbox_folder, email: params.email,
                    expires: params.expires, timeout: params.timeout]
        SUBMIT(Channel.value([meta, file(params.run_config, checkIfExists: true)]))
        SUBMIT.out.summary.subscribe { m, summary -> log.info "syqure-wf: run finished, summary ${summary}" }
        versions = SUBMIT.out.versions
    } else {
        if (params.one_party && params.pid == null) {
            error "syqure-wf: this profile runs this machine's party only: give --pid (0..${(params.parties as int) - 1})"
        }
        def pids = params.pid != null ? [params.pid as int] : (0..<(params.parties as int)).toList()
        def run = [id: params.run, config: params.run_config, run_dir: params.run_dir ?: "${launchDir}/runs/${params.run}",
                   run_id: params.run_id ?: '', parties_here: pids.size(),
                   per_host: params.pid != null || params.placement ? 1 : pids.size()]
        SYQURE(run, Channel.fromList(pids).map { pid -> [[id: "party-${pid}", pid: pid], []] })
        SYQURE.out.summary.subscribe { m, summary -> log.info "syqure-wf: run finished, summary ${summary}" }
        versions = SYQURE.out.versions
    }
    // one entry per process: the parties' files say the same, each once
    versions.map { f -> f.text }.unique().collectFile(name: 'versions.yml', storeDir: "${params.outdir}/pipeline_info", sort: true)
}
