// One party of the run: its proxy (in the same process, nothing to orphan)
// and its MPC program. Its result is in its work folder; its messages, status
// record and logs in the run folder the parties share (run.yaml says where).
// Fails within seconds, naming the peer, when a peer failed. A party cannot
// be retried alone: its peers' run is over.
process PARTY {
    tag "party ${meta.pid}"
    label 'process_single'
    conda "${moduleDir}/environment.yml"
    errorStrategy 'terminate'

    input:
    tuple val(meta), path(data)   // meta: id, pid; data: the party's private input ([] for none)
    path config                   // the resolved run configuration (from PREPARE)
    path binary                   // the built Sequre program (from BUILD; [] for none)

    output:
    tuple val(meta), path("party-${meta.pid}.json"), emit: result
    path 'versions.yml', emit: versions

    script:
    def input = data ? "--input ${data}" : ''
    def built = binary ? "--binary ${binary}" : ''
    """
    syqure-wf party --config ${config} --pid ${meta.pid} ${input} --output party-${meta.pid}.json ${built}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        syqure-wf: \$(syqure-wf --version | sed 's/.* //')
    END_VERSIONS
    """

    stub:
    """
    touch party-${meta.pid}.json
    echo '"${task.process}": {syqure-wf: stub}' > versions.yml
    """
}
