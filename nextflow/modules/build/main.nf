// Compile the run's Sequre program once, for every party of this machine
// (or, on a cluster, for the nodes that share the work folder). Engines with
// nothing to compile (MPyC, a command) emit no binary.
process BUILD {
    tag 'sequre'
    label 'process_single'

    input:
    path config          // the resolved run configuration (from PREPARE)

    output:
    path 'program', emit: binary, optional: true

    script:
    """
    syqure-wf build --config ${config} --out program --if-needed
    """
}
