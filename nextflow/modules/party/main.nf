// One party of the run: its proxy (in the same process, nothing to orphan)
// and its MPC program. Its result is in its work folder; its messages, status
// record and logs in the run folder the parties share (run.yaml says where).
// Fails within seconds, naming the peer, when a peer failed. A party cannot
// be retried alone: its peers' run is over (label process_mpc: no retry, and
// the run's own time bound, meta.time_limit; nextflow.config).
process PARTY {
    tag "party ${meta.pid}"
    label 'process_mpc'
    conda "${moduleDir}/environment.yml"
    container 'localhost/syqure-wf:0.1.0'

    input:
    tuple val(meta), path(data)   // meta: id, pid (time_limit: set by SYQURE); data: the party's private input ([] for none)
    path config                   // the resolved run configuration (from PREPARE)
    path binary                   // the built Sequre program (from BUILD; [] for none)

    output:
    tuple val(meta), path("party-${meta.pid}.json"), emit: result
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def input = data ? "--input ${data}" : ''
    def built = binary ? "--binary ${binary}" : ''
    """
    syqure-wf party --config ${config} --pid ${meta.pid} ${input} --output party-${meta.pid}.json ${built} ${args}
    syqure-wf versions --config ${config} --process "${task.process}" > versions.yml
    """

    stub:
    // a result of the real shape: a JSON document (what the program writes)
    """
    printf '{"stub": true, "pid": ${meta.pid}}\\n' > party-${meta.pid}.json
    printf '"${task.process}":\\n    syqure-wf: "stub"\\n' > versions.yml
    """
}
