# Across organisations: this site submits the run to the sites' agents over
# SyftBox and waits; each site runs its own party when all are ready. The
# step's outputs are the collected results (what each site shares) and a
# summary naming every site's state. README, "Across organisations".


rule submit:
    output:
        results=directory(f"results/{RUN}/sites"),
        summary=f"results/{RUN}/summary.json",
    params:
        mpc=submission(),
        site=config["submit"],
        work=f"runs/{RUN}/submit",
    log:
        f"logs/{RUN}/submit.log",
    run:
        from syqure_wf.errors import SyqureError
        from syqure_wf.sites.steps import submit_and_wait

        with open(log[0], "w") as out:
            say = lambda line: print(line, file=out, flush=True)
            try:
                submit_and_wait(params.mpc, dict(params.site), output.results, output.summary, params.work, say)
            except SyqureError as exc:  # one line, naming the site and its reason
                say(f"error: {exc}")
                raise WorkflowError(str(exc)) from None
