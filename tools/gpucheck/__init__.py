"""The GPU check (tools/gpu_check.sh): one short, budgeted run on a lent GPU
that cannot lose what it found. runner.py runs the stages plan.py lists,
each within its share of the budget, and archive.py snapshots the results
folder into one compressed file after every stage and every few seconds;
verdicts.py decides from each stage's own outputs whether it checked what it
promised; summary.py writes SUMMARY.md. The stage tools (checks, probe_stage,
sanitize_cases, conv_cells, bench_stages) run as `python -m gpucheck.<tool>`
with tools/ on PYTHONPATH and need only the standard library, torch and
pytest."""
