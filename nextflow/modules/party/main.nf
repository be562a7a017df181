// One party of the run: its proxy (in the same process, nothing to orphan)
// and its MPC program. Fails within seconds, naming the peer, when a peer failed.
process PARTY {
    tag "party ${pid}"
    label 'process_single'

    input:
    path config                  // the resolved run configuration (from PREPARE)
    path binary                  // the built Sequre program (from BUILD; [] for none)
    tuple val(pid), path(data)   // the party, and its private input ([] for none)

    output:
    tuple val(pid), path("party-${pid}.json"), emit: result

    script:
    def input = data ? "--input ${data}" : ''
    def built = binary ? "--binary ${binary}" : ''
    """
    syqure-wf party --config ${config} --pid ${pid} ${input} --output party-${pid}.json ${built}
    """
}
