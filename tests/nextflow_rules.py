"""reftrace rules for nextflow/: syntax is checked by reftrace itself; these
add the conventions the modules follow (nf-core style)."""
from reftrace import Module
from reftrace.linting import LintError, LintResults, rule


@rule
def every_process_has_a_label(module: Module, results: LintResults):
    for process in module.processes:
        if not process.labels:
            results.errors.append(LintError(line=process.line, error=f"process '{process.name}' has no label"))


@rule
def one_process_per_module(module: Module, results: LintResults):
    if "modules/" in module.path and len(module.processes) != 1:
        results.errors.append(LintError(line=1, error=f"{module.path}: a module holds exactly one process"))


@rule
def every_module_says_its_software(module: Module, results: LintResults):
    if "modules/" in module.path:
        for process in module.processes:
            if not (process.condas or process.containers):
                results.errors.append(LintError(line=process.line, error=f"process '{process.name}' names no conda environment or container"))
