"""kerascnn benchmarks (`python -m benchmarks`) and evidence experiments
(`python -m benchmarks.evidence`). Not part of the installed package."""
