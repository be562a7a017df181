// Across organisations: submit the run to every site's agent over SyftBox
// and wait; each site runs its own party once all are ready. Outputs what
// each site shared and a summary naming every site's state. Fails, naming
// the site and its reason, on a rejection, a failure or the expiry.
process SUBMIT {
    tag "${email}"
    label 'process_single'

    input:
    path config          // a run configuration whose inputs are names (each site maps them)
    val to               // the parties' emails in pid order, comma-separated
    val syftbox_folder   // this site's SyftBox folder
    val email            // this site's SyftBox email

    output:
    path 'results/party-*.json', emit: results, optional: true
    path 'summary.json', emit: summary

    script:
    """
    run_id=\$(syqure-wf submit --config ${config} --to ${to} --syftbox-folder ${syftbox_folder} --email ${email} | tail -n 1)
    syqure-wf wait "\$run_id" --syftbox-folder ${syftbox_folder} --email ${email} --results collected
    mkdir -p results
    cp collected/"\$run_id"/party-*.json results/ 2>/dev/null || true
    cp collected/"\$run_id"/sites.json summary.json
    """
}
