"""Load generation against a local Anvil, shared by the benchmarks in bench/ (which run with
bench/ on sys.path).

- `harness`: sign, send, watch and confirm a workload; its rates (`run_workload`).
- `federation`: a deployment with its participants registered and round 0 open
  (`setup_federation`).
- `workloads`: the measured workloads (`WORKLOADS`).
- `scenario`: a chain profile's repetitions, each on a fresh Anvil (`run_scenario`).
- `report`: the figures of a throughput run.
"""
